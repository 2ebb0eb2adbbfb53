"""The pytest plugin, as a user meets it: their own test file, no conftest, the fixture there."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import readme_example, run_as_a_user


def test_a_users_test_file_gets_a_running_stack_with_no_conftest(tmp_path: Path) -> None:
    (tmp_path / "test_scoring.py").write_text(readme_example("## Test your own code against it"))

    run = run_as_a_user(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_scoring.py"],
        tmp_path,
    )

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "1 passed" in run.stdout
    assert not any(p.name == "conftest.py" for p in tmp_path.rglob("*"))
