"""The README's configs are valid: what the documentation shows works."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pipeline.config import load_config
from pipeline.registry import build_registry

from fspipeline_redis import plugin

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("number", [0, 1])
def test_readme_configs_pass_check(
    number: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", "pw")
    monkeypatch.setenv("HOSTNAME", "worker-1")
    configs = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(configs) == 2
    (tmp_path / "config.yaml").write_text(configs[number])
    registry = build_registry(extra_plugins=[("redis", plugin)], autoload=False)
    plan = load_config(tmp_path / "config.yaml", registry)
    assert any(
        part.spec.type_name == "redis"
        for pipeline in plan.pipelines
        for part in [*pipeline.sources, *pipeline.sinks]
    )
