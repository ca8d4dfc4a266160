"""The README's config is valid: what the documentation shows works."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.config import load_config
from pipeline.registry import build_registry

from fspipeline_qt import plugin

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_config_passes_check(tmp_path: Path) -> None:
    (config,) = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.DOTALL)
    (tmp_path / "config.yaml").write_text(config)
    registry = build_registry(extra_plugins=[("qt", plugin)], autoload=False)
    plan = load_config(tmp_path / "config.yaml", registry)
    (source,) = plan.pipelines[0].sources
    assert source.spec.type_name == "qt"
