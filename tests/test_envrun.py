"""docker/envrun runs CMD in the caller's working directory, with the
checkout importable: a config outside the checkout, given relative to where
the user stands, is found (issue 22 item 6). In the chroot route the same
directories are bound at the same paths (checked by hand: docker/README.md);
inside the environment, as here, envrun runs CMD directly."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENVRUN = ROOT / "docker" / "envrun"


def test_envrun_keeps_the_working_directory(tmp_path):
    res = subprocess.run([str(ENVRUN), "python3", "-c", "import os; print(os.getcwd())"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert Path(res.stdout.strip()).resolve() == tmp_path.resolve()


def test_envrun_checks_a_config_outside_the_checkout(tmp_path):
    (tmp_path / "study").mkdir()
    shutil.copy(ROOT / "configs" / "demo.yaml", tmp_path / "study" / "mine.yaml")
    res = subprocess.run([str(ENVRUN), "python3", "-m", "solver", "check", "study/mine.yaml"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "is valid" in res.stdout
