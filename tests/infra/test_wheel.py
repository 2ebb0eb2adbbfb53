"""Installed as users install it: a built wheel, not this checkout, runs the local stack."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    return next(out.glob("lgbm_pipeline-*.whl"))


def test_the_wheel_carries_the_template_itself(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        packaged = archive.read("pipeline/local/template.yaml")

    assert packaged == (ROOT / "template.yaml").read_bytes()


def test_a_fresh_environment_with_the_wheel_runs_the_demo(wheel: Path, tmp_path: Path) -> None:
    """The wheel in a new virtual environment; its dependencies are this one's (no download)."""
    fresh = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(fresh)], check=True, timeout=120)
    python = fresh / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)],
        check=True,
        timeout=300,
    )
    where = subprocess.run(
        [str(python), "-c", "import pipeline; print(pipeline.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout

    demo = subprocess.run(
        [str(fresh / "bin" / "pipeline"), "demo", "--rows", "200"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )

    assert where.startswith(site), where
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert '"status": "succeeded"' in demo.stdout
    saved = [p for p in tmp_path.glob("*.csv")]
    assert len(saved) == 1, "the demo leaves its scored file where it ran"
    assert f"The scored file is {saved[0]}." in demo.stdout
    assert saved[0].read_text().splitlines()[0].endswith(",prediction")
