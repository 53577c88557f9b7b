"""The session's os._exit keeps pytest's exit status (a failing run must not pass)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# Printed only if the interpreter shuts down normally; os._exit skips atexit handlers.
PROBE = "import atexit\natexit.register(lambda: print('NORMAL-SHUTDOWN'))\n"


def run_pytest(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(PROBE + body)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-c",
            "/dev/null",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("def test_ok():\n    assert True\n", 0),
        ("def test_bad():\n    assert False\n", 1),
        ("X = 1\n", 5),
    ],
)
def test_exit_status_survives_the_hard_exit(tmp_path: Path, body: str, status: int) -> None:
    result = run_pytest(tmp_path, body)
    assert result.returncode == status, result.stdout + result.stderr
    assert "NORMAL-SHUTDOWN" not in result.stdout
