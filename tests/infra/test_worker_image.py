"""The container image runs the same worker the local stack runs."""

import json
from pathlib import Path

import pytest

from pipeline.local.workers import worker_command

DOCKERFILE = Path(__file__).resolve().parents[2] / "infra" / "Dockerfile"


def instruction(name: str) -> str:
    lines = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith(f"{name} ")]
    assert len(lines) == 1, f"one {name} expected"
    return lines[0].removeprefix(f"{name} ")


def test_the_image_runs_the_local_stacks_worker_command() -> None:
    image = json.loads(instruction("CMD"))
    local = worker_command("worker")
    assert image[0] == "celery"
    assert local[1:3] == ["-m", "celery"]
    assert sorted(image[1:]) == sorted(local[3:])


def test_the_image_runs_unprivileged_with_lightgbm_runtime() -> None:
    assert instruction("USER") == "10001"
    assert "libgomp1" in DOCKERFILE.read_text()
    assert instruction("STOPSIGNAL") == "SIGTERM"


def test_the_image_proves_the_compiled_engine_at_build_time() -> None:
    """The build runs the self-check; here it runs too, so a broken check fails CI."""
    from pipeline.scoring.engine import selfcheck

    install = 'pip install --no-cache-dir ".[worker]"'
    selfcheck_step = "&& python -m pipeline.scoring.engine.selfcheck"
    assert f"{install} \\\n    {selfcheck_step}" in DOCKERFILE.read_text()
    verdict = selfcheck.check()
    assert verdict.passed, verdict.reason


@pytest.mark.usefixtures("no_number_pass")
def test_the_self_check_fails_an_image_whose_number_pass_cannot_be_generated() -> None:
    from pipeline.scoring.engine import selfcheck

    verdict = selfcheck.check()
    assert not verdict.passed
    assert "number pass" in verdict.reason
