"""Validates configuration data against the registry and builds a Plan, or lists every problem."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import structlog
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from pipeline.components import ComponentKind
from pipeline.config.plan import DELIVERY_KEYS, ComponentPlan, DeliveryPolicy, PipelinePlan, Plan
from pipeline.config.yamldoc import ConfigPath, Locator, dotted, parse_yaml
from pipeline.errors import ConfigError
from pipeline.options import parse_duration
from pipeline.redact import redact
from pipeline.registry import Registry
from pipeline.security import config_exposure

if TYPE_CHECKING:
    from pipeline.expr import Expression

TOP_LEVEL_KEYS = ("state_dir", "shutdown_timeout", "run_as", "pipelines")
PIPELINE_KEYS = ("sources", "stages", "sinks", "dead_letter")
SECTION_KIND = {
    "sources": ComponentKind.SOURCE,
    "stages": ComponentKind.STAGE,
    "sinks": ComponentKind.SINK,
}
DEFAULT_SHUTDOWN_TIMEOUT = 10.0
RUNS_COMMANDS = frozenset({"command"})
"""Component types that start programs: a config using one is code, guarded like code."""
_PIPELINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
log = structlog.get_logger("pipeline.config")


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def _unknown_key(key: str, allowed: list[str], what: str, owner: str = "") -> str:
    of = f" of {owner}" if owner else ""
    return f"unknown {what} {key!r}{of}; {_suggest(key, allowed)}allowed: {', '.join(allowed)}"


class _Validator:
    def __init__(self, registry: Registry, locator: Locator, config_dir: Path) -> None:
        self.registry = registry
        self.locator = locator
        self.config_dir = config_dir
        self.problems: list[str] = []
        self.state_dir: Path | None = None

    def problem(self, path: ConfigPath, message: str, *, key: bool = False) -> None:
        if path in self.locator.broken:
            return  # already reported where the value is written
        self.problems.append(self.locator.problem(path, message, key=key))

    def top_level(self, data: Any) -> tuple[Path | None, float, tuple[PipelinePlan, ...]]:
        if data is None:
            self.problem((), "the config is empty; it needs a `pipelines:` mapping")
            return None, DEFAULT_SHUTDOWN_TIMEOUT, ()
        if not isinstance(data, Mapping):
            self.problem((), "the config must be a mapping with a `pipelines:` key")
            return None, DEFAULT_SHUTDOWN_TIMEOUT, ()
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                self.problem((key,), _unknown_key(key, list(TOP_LEVEL_KEYS), "key"), key=True)
        state_dir = self.state_dir = self._state_dir(data.get("state_dir"))
        timeout = self._duration(data, "shutdown_timeout", DEFAULT_SHUTDOWN_TIMEOUT)
        pipelines = data.get("pipelines")
        if not isinstance(pipelines, Mapping) or not pipelines:
            self.problem(
                ("pipelines",),
                "`pipelines` must map pipeline names to {sources, stages, sinks}",
            )
            return state_dir, timeout, ()
        plans = tuple(
            plan
            for name, body in pipelines.items()
            if (plan := self.pipeline(str(name), body)) is not None
        )
        return state_dir, timeout, plans

    def run_as(self, data: Any) -> str | None:
        """`run_as: USER`: the account to become once every pipeline is open (Linux, root)."""
        value = data.get("run_as") if isinstance(data, Mapping) else None
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            self.problem(("run_as",), "run_as must name a user (or a numeric uid), e.g. fspipeline")
            return None
        return value.strip()

    def _state_dir(self, value: Any) -> Path | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(("state_dir",), "state_dir must be a folder path")
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.config_dir / path

    def _duration(self, data: Mapping[str, Any], key: str, default: float) -> float:
        if key not in data:
            return default
        try:
            return parse_duration(data[key])
        except ValueError as exc:
            self.problem((key,), str(exc))
            return default

    def pipeline(self, name: str, body: Any) -> PipelinePlan | None:
        path: ConfigPath = ("pipelines", name)
        if not _PIPELINE_NAME.match(name):
            self.problem(path, "a pipeline name uses letters, digits, '_', '-' or '.'", key=True)
        if not isinstance(body, Mapping):
            self.problem(path, "a pipeline is a mapping with sources, stages and sinks")
            return None
        for key in body:
            if key not in PIPELINE_KEYS:
                self.problem((*path, key), _unknown_key(key, list(PIPELINE_KEYS), "key"), key=True)
        sections: dict[str, tuple[ComponentPlan, ...]] = {}
        for section, kind in SECTION_KIND.items():
            items = body.get(section, [] if section == "stages" else None)
            where = (*path, section)
            if items is None:
                self.problem(path, f"missing `{section}:`; a pipeline needs at least one {kind}")
                items = []
            elif not isinstance(items, list):
                self.problem(where, f"`{section}` must be a list of {{type: ..., options}}")
                items = []
            elif not items and section != "stages":
                self.problem(where, f"`{section}` is empty; a pipeline needs at least one {kind}")
            built = (self.component(kind, item, (*where, i)) for i, item in enumerate(items))
            sections[section] = tuple(plan for plan in built if plan is not None)
        dead_letter = None
        if body.get("dead_letter") is not None:
            where = (*path, "dead_letter")
            dead_letter = self.component(
                ComponentKind.SINK, body["dead_letter"], where, queued=False
            )
        return PipelinePlan(
            name, sections["sources"], sections["stages"], sections["sinks"], dead_letter
        )

    def component(
        self, kind: ComponentKind, item: Any, path: ConfigPath, *, queued: bool = True
    ) -> ComponentPlan | None:
        """Validate one component; `queued` sinks also take the engine's delivery keys."""
        if not isinstance(item, Mapping):
            self.problem(path, f"a {kind} is a mapping with a `type:` key and its options")
            return None
        known = self.registry.names(kind)
        type_name = item.get("type")
        if not isinstance(type_name, str):
            self.problem(path, f"missing `type:`; {kind} types: {', '.join(known)}")
            return None
        spec = self.registry.get(kind, type_name)
        if spec is None:
            elsewhere = [s.kind.value for s in self.registry.find(type_name)]
            hint = (
                f"{type_name!r} is a {' and '.join(elsewhere)}, not a {kind}; " if elsewhere else ""
            )
            self.problem(
                (*path, "type"),
                f"unknown {kind} type {type_name!r}; {hint}{_suggest(type_name, known)}"
                f"known {kind} types: {', '.join(known)} (see `pipeline plugins`)",
            )
            return None
        options = {k: v for k, v in item.items() if k != "type"}
        when = None
        if kind is not ComponentKind.SOURCE and queued and "when" in options:
            when = self._condition(options.pop("when"), (*path, "when"))
        delivery: DeliveryPolicy | None = None
        if kind is ComponentKind.SINK and queued:
            engine_keys = {k: options.pop(k) for k in list(options) if k in DELIVERY_KEYS}
            delivery = self._validate(DeliveryPolicy, engine_keys, path, type_name)
            if delivery is not None and delivery.spool and self.state_dir is None:
                self.problem(
                    (*path, "spool"), "a spool lives under `state_dir`; set state_dir at the top"
                )
                return None
        model = spec.options_model
        validated = self._validate(model, options, path, type_name)
        if validated is None or (kind is ComponentKind.SINK and queued and delivery is None):
            return None
        if when is False:
            return None
        return ComponentPlan(spec, validated, dotted(path[1:]), delivery, when or None)

    def _condition(self, text: Any, path: ConfigPath) -> Expression | Literal[False]:
        """Compile a `when:` condition; False (after reporting) when it is not valid."""
        from pipeline.expr import ExpressionError, compile_expression

        if not isinstance(text, str) or not text.strip():
            self.problem(path, '`when` is a condition such as: ext == ".csv" and size > 0')
            return False
        try:
            return compile_expression(text)
        except ExpressionError as exc:
            self.problem(path, f"invalid condition: {exc}")
            return False

    def _validate(self, model: Any, data: dict[str, Any], path: ConfigPath, type_name: str) -> Any:
        try:
            return model.model_validate(data, context={"config_dir": self.config_dir})
        except ValidationError as exc:
            allowed = sorted(
                {*model.model_fields, *(DELIVERY_KEYS if path[2:3] == ("sinks",) else ())}
            )
            errors = exc.errors()
            missing = {str(e["loc"][0]) for e in errors if e["type"] == "missing" and e["loc"]}
            # A misspelt required option is one mistake: report the typo, not also the gap.
            explained: set[str] = set()
            for error in errors:
                self._report(error, path, type_name, allowed, missing=missing, explained=explained)
            for error in errors:
                if error["type"] == "missing" and str(error["loc"][0]) not in explained:
                    loc = (*path, *error["loc"])
                    self.problem(path, f"missing required option {loc[-1]!r} of {type_name}")
            return None

    def _report(
        self,
        error: ErrorDetails,
        path: ConfigPath,
        type_name: str,
        allowed: list[str],
        *,
        missing: set[str],
        explained: set[str],
    ) -> None:
        loc = tuple(error["loc"])
        where = (*path, *loc)
        if error["type"] == "extra_forbidden" and len(loc) == 1:
            key = str(loc[0])
            message = _unknown_key(key, allowed, "option", type_name)
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            if close and close[0] in missing:
                explained.add(close[0])
                message = message.replace("? ", f"? ({close[0]} is required) ", 1)
            self.problem(where, message, key=True)
        elif error["type"] == "missing":
            return  # reported after the others, unless a typo explained it
        else:
            message = error["msg"]
            if message.startswith("Value error, "):
                message = message[len("Value error, ") :]
            self.problem(where, message)


def _position(source: str) -> Any:
    """Sort key: problems in the order their line and column appear in the file."""

    def key(problem: str) -> tuple[int, int]:
        match = re.match(r"(\d+):(\d+):", problem.removeprefix(source + ":"))
        return (int(match.group(1)), int(match.group(2))) if match else (0, 0)

    return key


def load_config_data(
    data: Any,
    registry: Registry,
    *,
    source: str,
    config_dir: Path,
    locator: Locator | None = None,
    problems: list[str] | None = None,
) -> Plan:
    """Validate already-parsed data (from YAML or built by a command) into a Plan."""
    validator = _Validator(registry, locator or Locator(source), config_dir)
    validator.problems.extend(problems or [])
    state_dir, timeout, pipelines = validator.top_level(data)
    run_as = validator.run_as(data)
    if validator.problems:
        raise _config_error(sorted(validator.problems, key=_position(source)))
    return Plan(source, config_dir, state_dir, timeout, pipelines, dict(data), run_as=run_as)


def _config_error(problems: list[str]) -> ConfigError:
    # A validator may quote the value it rejects, such as a URL with its password.
    return ConfigError([redact(problem) for problem in problems])


def _runs_commands(plan: Plan) -> bool:
    for pipeline in plan.pipelines:
        sinks = [*pipeline.sinks, *([pipeline.dead_letter] if pipeline.dead_letter else [])]
        components = [*pipeline.sources, *pipeline.stages, *sinks]
        if any(component.spec.type_name in RUNS_COMMANDS for component in components):
            return True
    return False


def warn_if_exposed(path: Path, plan: Plan) -> None:
    """Warn when `plan` runs commands and users other than this one could change `path`."""
    if not _runs_commands(plan):
        return
    for reason in config_exposure(path):
        log.warning(
            "other users can change this config, and it runs commands: they could run "
            "any program as this user",
            config=str(path),
            problem=reason,
        )


def load_config(path: Path, registry: Registry, environ: Mapping[str, str] | None = None) -> Plan:
    """Read, expand and validate a YAML config file; raise ConfigError listing every problem."""
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [f"{shown}:1:1: no such config file; pass its path, or create it"]
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"{shown}:1:1: not UTF-8 text ({exc.reason} at byte {exc.start})"]
        ) from None
    except OSError as exc:
        raise ConfigError([f"{shown}:1:1: cannot read the config: {exc.strerror}"]) from None
    data, locator, problems = parse_yaml(text, shown, environ)
    if data is None and problems:
        raise _config_error(problems)
    plan = load_config_data(
        data,
        registry,
        source=shown,
        config_dir=path.absolute().parent,
        locator=locator,
        problems=problems,
    )
    warn_if_exposed(path, plan)
    return plan
