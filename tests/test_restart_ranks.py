"""C2 across rank counts, N -> M with N > M: a run on 4 ranks (oversubscribed
on a small machine) stopped at step 3 restarts from its checkpoint on 2 ranks
and on 1 rank, and each ends where the straight 4-rank run ends: one row per
step, scalars and the last fields within the coupled Newton's tolerance
(solver.newton.coupled_rtol, 1e-6 of a step's first residual: the Krylov
path depends on the partition). Measured 1.4e-8 on the scalars (2.3e-14 and
1.4e-14 with the former staggered default, where only round-off differed)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_coupled import SMALL as _SMALL

ROOT = Path(__file__).resolve().parents[1]

# test_coupled.SMALL (two grains, a Na layer, all five fields, 6 steps) under its own name
SMALL = {**json.loads(json.dumps(_SMALL)), "name": "restart_ranks"}
KEYS = ("time_s", "metal_area_m2", "charge_C_m", "current_density_A_m2", "elastic_energy_J_m", "max_pressure_Pa",
        "dendrite_tip_m")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs mpirun")]


def _run(cfg: Path, out: Path, ranks: int, *extra: str) -> None:
    cmd = [sys.executable, "-m", "solver", "run", str(cfg), "-o", str(out), *extra]
    if ranks > 1:
        cmd = ["mpirun", "-n", str(ranks), *cmd]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"


def _rows(out: Path) -> list[dict]:
    with open(out / "scalars.csv") as fh:
        return list(csv.DictReader(fh))


def _last_fields(out: Path) -> tuple[np.ndarray, dict]:
    """Points and point fields of the last output step, sorted by coordinates."""
    from solver.io.series import FieldSeries

    with FieldSeries(out / "fields.xdmf") as series:
        fr = series.frame(len(series) - 1)
    pts = np.round(fr.points[:, :2], 9)
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    return pts[order], {k: fr.point_data[k].ravel()[order] for k in ("metal", "damage")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Straight 4-rank run; 4-rank run stopped at step 3; its copies restarted on 2 and 1 ranks."""
    tmp = tmp_path_factory.mktemp("restart_ranks")
    cfg = tmp / "small.yaml"
    cfg.write_text(yaml.safe_dump(SMALL))
    _run(cfg, tmp / "full4", 4)
    _run(cfg, tmp / "split4", 4, "--set", "time.max_steps=3")
    assert [int(r["step"]) for r in _rows(tmp / "split4")] == [1, 2, 3]
    assert json.loads((tmp / "split4" / "summary.json").read_text())["ranks"] == 4
    for m in (2, 1):
        shutil.copytree(tmp / "split4", tmp / f"restart{m}")
        _run(cfg, tmp / f"restart{m}", m, "--restart")
    return tmp


@pytest.mark.parametrize("ranks", [2, 1])
def test_restart_4_ranks_on_fewer(runs, ranks):
    full, split = runs / "full4", runs / f"restart{ranks}"
    summary = json.loads((split / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["ranks"] == ranks and summary["steps"] == 6
    a, b = _rows(full), _rows(split)
    assert [int(r["step"]) for r in b] == [1, 2, 3, 4, 5, 6]
    worst = 0.0
    for key in KEYS:
        va = np.array([float(r[key]) for r in a])
        vb = np.array([float(r[key]) for r in b])
        # the coupled Newton stops at solver.newton.coupled_rtol (1e-6 of the step's first
        # residual) and its Krylov path depends on the partition: a restart on other ranks
        # reproduces the scalars to that tolerance (measured 1.4e-8), not to round-off
        assert np.allclose(vb, va, rtol=1e-6, atol=1e-12 * np.abs(va).max()), (key, va, vb)
        worst = max(worst, float(np.max(np.abs(vb - va) / np.maximum(np.abs(va), 1e-300))))
    print(f"4 -> {ranks} ranks: largest relative difference of the scalars {worst:.1e}")
    xa, fa = _last_fields(full)
    xb, fb = _last_fields(split)
    assert np.allclose(xa, xb, atol=1e-9)
    for key in ("metal", "damage"):
        assert np.allclose(fa[key], fb[key], rtol=1e-6, atol=1e-8), key
