"""The GitHub Actions workflow (.github/workflows/ci.yml) is valid YAML of the right shape:
a Linux job that runs `./dev test` next to every broker, and a Windows job that runs the
live Windows tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "ci.yml"


def load() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def runs(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def uses(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        step["uses"].split("@")[0]: step.get("with", {}) for step in job["steps"] if "uses" in step
    }


def test_it_runs_on_pushes_and_pull_requests() -> None:
    data = load()
    triggers: dict[str, Any] = data[True]  # YAML 1.1 reads a bare `on` key as true
    assert {"push", "pull_request"} <= set(triggers)
    assert data["permissions"] == {"contents": "read"}


def test_every_step_is_a_run_or_a_pinned_action() -> None:
    for name, job in load()["jobs"].items():
        assert isinstance(job["timeout-minutes"], int), name
        for step in job["steps"]:
            assert ("run" in step) != ("uses" in step), (name, step)
            if "uses" in step:
                assert "@v" in step["uses"], step["uses"]


def test_the_linux_job_runs_dev_test_with_every_broker() -> None:
    job = load()["jobs"]["linux"]
    assert job["runs-on"] == "ubuntu-latest"
    assert uses(job)["actions/setup-python"]["python-version"] == "3.11"
    services = job["services"]
    assert services["redis"]["ports"] == ["6379:6379"]
    assert services["rabbitmq"]["ports"] == ["5672:5672"]
    script = runs(job)
    # NATS needs JetStream (-js) and Mosquitto a listener for the host: started as steps.
    assert "4222:4222" in script and "nats:2.10 -js" in script
    assert "1883:1883" in script and "mosquitto-no-auth.conf" in script
    wait = next(step["run"] for step in job["steps"] if step.get("name", "").startswith("Wait"))
    assert "for port in 6379 5672 4222 1883" in wait and "exit 1" in wait
    last = job["steps"][-1]
    assert "./dev test" in last["run"]


def test_the_windows_job_runs_the_live_tests_on_windows() -> None:
    job = load()["jobs"]["windows"]
    assert job["runs-on"] == "windows-latest"
    assert uses(job)["actions/setup-python"]["python-version"] == "3.11"
    assert "actions/checkout" in uses(job)
    script = runs(job)
    assert 'pip install -e ".[dev]"' in script
    assert "plugins/*/" in script  # the plugins that install on Windows too
    assert "mypy --platform win32" in script
    test_step = job["steps"][-1]["run"]
    assert "pytest" in test_step and "tests/windows" in test_step
    assert "tests/unit/test_rdcw_*.py" in test_step
    assert job["defaults"]["run"]["shell"] == "bash"  # the step scripts are bash
