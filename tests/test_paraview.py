"""fields.xdmf opens in ParaView itself (pvpython, headless under Xvfb)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("pvpython") is None or shutil.which("xvfb-run") is None,
                    reason="ParaView (pvpython) or xvfb-run not installed")
def test_pvpython_opens_fields_and_renders(tmp_path):
    from solver.config import load_config
    from solver.run import run

    out = tmp_path / "run"
    assert run(load_config(ROOT / "configs/verification/conduction_polycrystal.yaml", ["mesh.h=1 um", "time.t_end=2 s"]), out) == 0
    png = tmp_path / "shot.png"
    cmd = ["pvpython", str(ROOT / "paraview/open_fields.py"), str(out / "fields.xdmf"),
           "--screenshot", str(png)]
    res = run_pvpython(cmd)
    if res.returncode == 134 and "CreateVTKObjects" in res.stderr:
        # once in ~20 CI runs on a loaded 2-core machine, ParaView aborted while
        # creating its render view under Xvfb (an OpenGL context, before our
        # script touches the data); a second start has always worked
        res = run_pvpython(cmd)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[:1500] + " ... " + res.stderr[-1500:]
    frames = 1 + len((out / "scalars.csv").read_text().strip().splitlines()) - 1  # t = 0, then one per step
    assert "point fields ['potential']" in res.stdout and f"{frames} time steps" in res.stdout
    assert png.stat().st_size > 10_000


def run_pvpython(cmd):
    """pvpython under xvfb-run, whose display search (-a) starts at a number
    drawn from the process id: two environments (chroots with their own /tmp,
    so their own X lock files) both took :99 here, and ParaView aborted on
    the other's server. (pyvista's headless() with Xvfb -displayfd does not
    suit pvpython: it aborts with 'bad X server connection' on such a display.)"""
    import os

    return subprocess.run(["xvfb-run", "-a", "-n", str(100 + os.getpid() % 800)] + cmd, capture_output=True,
                          text=True, timeout=300)
