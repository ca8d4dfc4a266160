"""`pipeline doctor [CONFIG]`: check the machine and a config, and say what to fix."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from pipeline.doctor import (
    Finding,
    Status,
    check_fanotify,
    check_inotify,
    check_plugins,
    check_python,
    check_state_dir,
)


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser(
        "doctor",
        parents=[common],
        help="check this machine and a config: limits, privileges, state_dir, brokers",
        description="Check what fspipeline depends on: Python, the installed plugins, inotify "
        "limits, fanotify's capability and, for CONFIG (default ./config.yaml if present), "
        "that it is valid, its state_dir is writable and every broker or endpoint it names "
        "answers (as `pipeline check --connect`). Prints each finding with the fix; exits 1 "
        "if one failed.",
    )
    parser.add_argument("config", nargs="?", type=Path, help="YAML config to check too")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    findings = [check_python(), check_plugins(), *check_inotify(), check_fanotify()]
    config: Path | None = args.config
    if config is None and Path("config.yaml").is_file():
        config = Path("config.yaml")
    if config is not None:
        findings += _config_findings(config, args.timeout)
    for finding in findings:
        sys.stdout.write(finding.line() + "\n")
    failed = sum(f.status is Status.FAIL for f in findings)
    warned = sum(f.status is Status.WARN for f in findings)
    sys.stdout.write(f"\n{failed} failed, {warned} warnings, {len(findings)} checks\n")
    return 1 if failed else 0


def _config_findings(config: Path, timeout: float) -> list[Finding]:
    from pipeline.cli.probe import probe_all
    from pipeline.config import load_config
    from pipeline.errors import ConfigError, PluginError
    from pipeline.registry import build_registry

    try:
        plan = load_config(config, build_registry())
    except ConfigError as exc:
        return [
            Finding(Status.FAIL, "config", problem, "see `pipeline check`")
            for problem in exc.problems
        ]
    except PluginError:
        return []  # already reported by the plugins check
    findings = [Finding(Status.OK, "config", f"{config} is valid")]
    if plan.state_dir is not None:
        findings += check_state_dir(plan.state_dir)
    failures = asyncio.run(probe_all(plan, timeout))
    findings += [
        Finding(Status.FAIL, "connect", line, "start it, or fix the URL or credentials")
        for line in failures
    ]
    if not failures:
        findings.append(Finding(Status.OK, "connect", "every component's target answers"))
    return findings
