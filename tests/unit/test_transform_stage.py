"""The transform stage and the placeholder templates it shares with the command and log sinks."""

from __future__ import annotations

import asyncio
import grp
import hashlib
import os
import pwd
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydantic
import pytest

from pipeline import Event, EventKind
from pipeline.stages.fileinfo import inline
from pipeline.stages.transform import TransformStage
from pipeline.templates import (
    TemplateError,
    TemplateText,
    compile_template,
    placeholders,
    render,
)
from tests.conftest import make_component

ROOT = "/data/in"
MOMENT = datetime(2026, 11, 24, 6, 16, 49, 123456, tzinfo=UTC)


def ev(
    path: str = f"{ROOT}/sub/a.tar.gz", kind: EventKind = EventKind.CLOSED_WRITE, **kw: Any
) -> Event:
    meta = {"root": ROOT, **kw.pop("meta", {})}
    return Event(kind, path, "p/inotify", time=MOMENT, id="01ID", meta=meta, **kw)


# -- templates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{path}", f"{ROOT}/sub/a.tar.gz"),
        ("{name}|{stem}|{ext}|{dir}", f"a.tar.gz|a.tar|.gz|{ROOT}/sub"),
        ("{relpath}", "sub/a.tar.gz"),
        ("{kind}:{id}:{time}", "closed_write:01ID:2026-11-24T06:16:49.123456Z"),
        ("[{src_path}]", "[]"),
        ("{meta.root}", ROOT),
        ("{meta.size}/{meta.ok}/{meta.tags}", '12/true/["a","b"]'),
        ("{meta.nested.key}", "deep"),
        ("{meta.owner:-nobody}", "nobody"),
        ("{src_path:-none}", "none"),
        ("{{literal}} {{{name}}}", "{literal} {a.tar.gz}"),
        ("no placeholders", "no placeholders"),
    ],
)
def test_render(template: str, expected: str) -> None:
    meta = {"size": 12, "ok": True, "tags": ["a", "b"], "nested": {"key": "deep"}}
    assert render(template, ev(meta=meta)) == expected


def test_relpath_prefers_meta_relpath_and_moves_render_their_source() -> None:
    moved = ev(kind=EventKind.MOVED, src_path=f"{ROOT}/a.tmp", meta={"relpath": "x/y"})
    assert render("{relpath} <- {src_path}", moved) == f"x/y <- {ROOT}/a.tmp"
    assert render("{relpath}", Event(EventKind.CREATED, "/elsewhere/f", "p/x")) == "/elsewhere/f"


def test_a_missing_meta_value_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(TemplateError, match=r"this event has no meta.owner; give a default"):
        render("chown {meta.owner} {path}", ev())


def test_non_utf8_paths_keep_their_bytes() -> None:
    path = os.fsdecode(b"/data/in/caf\xe9.csv")
    assert os.fsencode(render("{dir}/{name}", ev(path))) == b"/data/in/caf\xe9.csv"


def test_placeholders_lists_what_a_template_uses() -> None:
    assert placeholders("{path} {meta.size:-0} {{x}} {kind}") == {"path", "meta.size", "kind"}


def test_braces_that_are_not_placeholders_are_plain_text() -> None:
    assert render("awk '{print $1}' {} {path", ev()) == "awk '{print $1}' {} {path"
    assert render("{{path}} {{x}}", ev()) == "{path} {x}"  # {{ and }} are always one brace
    assert render("{name}", ev("/weird/{kind}$(rm -rf).csv")) == "{kind}$(rm -rf).csv"


def test_source_is_dir_and_paths() -> None:
    batch = Event(EventKind.BATCH, "/in", "p/x", True, meta={"paths": ["/in/a", "/in/b"]})
    assert render("{source} {is_dir}", batch) == "p/x true"
    assert render("{paths}", batch) == "/in/a\n/in/b"
    assert render("{paths}", ev()) == f"{ROOT}/sub/a.tar.gz"


def test_escape_and_missing_let_a_sink_choose() -> None:
    template = compile_template("{name} {meta.owner}")
    assert template.render(ev(), escape=str.upper, missing="?") == "A.TAR.GZ ?"
    assert template.starts_with_field and not template.is_single_field
    assert compile_template("{path}").is_single_field


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{pth}", "column 1: unknown placeholder {pth}; known: {path}"),
        ("cp {path} {dest_dir}/", "column 11: unknown placeholder {dest_dir}"),
        ("{meta.a..b}", "column 1: empty key"),
    ],
)
def test_bad_templates_are_config_errors(template: str, message: str) -> None:
    class Options(pydantic.BaseModel):
        argv: list[TemplateText]

    with pytest.raises(pydantic.ValidationError, match=re.escape(message)):
        Options(argv=["python", template])


# -- the transform stage ---------------------------------------------------------------


def transform(tmp_path: Path, event: Event, **options: Any) -> Event:
    stage: TransformStage = make_component(TransformStage, tmp_path, **options)
    stage.offload = inline
    out: list[Event] = []

    async def emit(item: Event) -> None:
        out.append(item)

    asyncio.run(stage.process(event, emit))
    [result] = out
    return result


def test_set_relative_to_path_template_and_drop(tmp_path: Path) -> None:
    result = transform(
        tmp_path,
        ev(meta={"batch": 7}),
        relative_to="root",
        set={"meta.key": "{stem}-{kind}", "meta.target": "s3://bucket/{relpath}"},
        path_template="{stem}.{meta.batch}{ext}",
        drop=["meta.root"],
    )
    assert result.path == f"{ROOT}/sub/a.tar.7.gz"
    assert dict(result.meta) == {
        "batch": 7,
        "relpath": "sub/a.tar.gz",
        "key": "a.tar-closed_write",
        "target": "s3://bucket/sub/a.tar.gz",
        "original_path": f"{ROOT}/sub/a.tar.gz",
    }
    assert (result.id, result.kind, result.time) == ("01ID", EventKind.CLOSED_WRITE, MOMENT)


def test_relative_to_a_folder_and_paths_outside_it(tmp_path: Path) -> None:
    inside = transform(tmp_path, ev(), relative_to="/data")
    assert inside.meta["relpath"] == "in/sub/a.tar.gz"
    outside = transform(tmp_path, ev("/other/x"), relative_to="/data")
    assert "relpath" not in outside.meta
    relative = transform(tmp_path, ev(str(tmp_path / "in" / "x")), relative_to="in")
    assert relative.meta["relpath"] == "x"  # relative folders are taken from the config's


def test_file_facts(tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    target.write_bytes(b"id,amount\n1,9.99\n")
    os.chmod(target, 0o640)
    result = transform(
        tmp_path,
        ev(str(target)),
        add=["size", "mtime", "inode", "owner", "group", "mode", "mime", "sha256", "blake2b"],
    )
    st = target.stat()
    data = target.read_bytes()
    assert result.meta["size"] == len(data)
    assert (result.meta["mtime_ns"], result.meta["mtime"]) == (st.st_mtime_ns, st.st_mtime_ns / 1e9)
    assert result.meta["inode"] == st.st_ino
    assert result.meta["mode"] == "0640"
    assert result.meta["mime"] == "text/csv"
    assert result.meta["sha256"] == hashlib.sha256(data).hexdigest()
    assert result.meta["blake2b"] == hashlib.blake2b(data).hexdigest()
    assert result.meta["owner"] == pwd.getpwuid(st.st_uid).pw_name
    assert result.meta["group"] == grp.getgrgid(st.st_gid).gr_name


@pytest.mark.parametrize(
    ("content", "sniff", "mime"),
    [
        (b"%PDF-1.7\n...", True, "application/pdf"),
        (b"\x89PNG\r\n\x1a\n....", True, "image/png"),
        (b"PAR1....", True, "application/vnd.apache.parquet"),
        (b"plain words\n", True, "text/plain"),
        (b"\x00\x01\x02\xff", True, "application/octet-stream"),
        (b"%PDF-1.7\n...", False, "application/octet-stream"),
    ],
)
def test_mime_sniffing_for_names_without_a_known_extension(
    tmp_path: Path, content: bytes, sniff: bool, mime: str
) -> None:
    target = tmp_path / "upload-0001"
    target.write_bytes(content)
    assert transform(tmp_path, ev(str(target)), add=["mime"], sniff=sniff).meta["mime"] == mime


def test_a_missing_file_fails_that_event_and_deletions_get_no_facts(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        transform(tmp_path, ev(str(tmp_path / "gone.csv")), add=["sha256"])
    deleted = transform(tmp_path, ev(str(tmp_path / "gone.csv"), EventKind.DELETED), add=["sha256"])
    assert "sha256" not in deleted.meta


def test_folders_get_stat_facts_but_no_hash_or_mime(tmp_path: Path) -> None:
    folder = ev(str(tmp_path), EventKind.CREATED, is_dir=True)
    result = transform(tmp_path, folder, add=["mode", "sha256", "mime"])
    assert set(result.meta) == {"root", "mode"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"set": {"owner": "x"}}, "name a meta entry, like meta.owner"),
        ({"set": {"meta.path": "x"}}, "reserved"),
        ({"drop": ["root"]}, "name a meta entry"),
        ({"set": {"meta.k": "{nope}"}}, "unknown placeholder {nope}"),
        ({"path_template": "{nme}.csv"}, "unknown placeholder {nme}"),
        ({"add": ["md5"]}, "sha256"),
    ],
)
def test_options_are_validated(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(
        pydantic.ValidationError, match=message.replace("{", r"\{").replace("}", r"\}")
    ):
        make_component(TransformStage, tmp_path, **options)


def test_a_vanished_file_passes_without_facts_when_asked() -> None:
    import asyncio

    import pytest

    from pipeline.stages.transform import TransformStage
    from pipeline.testing import StageRun, make_component, make_event

    gone = make_event("moved", "/nonexistent/x.csv", src_path="/nonexistent/x.tmp")

    async def scenario(on_missing: str) -> list[dict[str, object]]:
        stage = make_component(TransformStage, {"add": ["size"], "on_missing": on_missing})
        async with StageRun(stage) as run:
            await run.send(gone)
            return [dict(e.meta) for e in run.events]

    assert asyncio.run(scenario("pass")) == [{"gone": True}]
    with pytest.raises(FileNotFoundError):
        asyncio.run(scenario("fail"))
