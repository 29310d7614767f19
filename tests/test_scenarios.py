"""C3 (Geng Fig. 6b, wedge mechanism) on the demo: a Na-filled notch in one
grain at 0.15 V. The confined deposit cracks the ceramic from the notch and
the crack tip runs ahead of the deposit tip while both advance."""

from __future__ import annotations

import csv
import math

import pytest


@pytest.mark.mpi
@pytest.mark.slow
def test_wedge_crack_runs_ahead_of_the_deposit(comm, shared_tmp):
    from solver.config import load_config
    from solver.run import run

    cfg = load_config("configs/demo.yaml", ["time.max_steps=30"])
    assert run(cfg, shared_tmp, comm=comm) == 0
    with open(shared_tmp / "scalars.csv") as fh:
        rows = list(csv.DictReader(fh))
    first, last = rows[0], rows[-1]
    tip0, tip1 = float(first["dendrite_tip_m"]), float(last["dendrite_tip_m"])
    crack_tip = float(last["crack_tip_m"])
    assert math.isnan(float(first["crack_tip_m"]))  # no crack before the deposit builds pressure
    assert tip1 > tip0  # the deposit advances
    assert float(last["crack_length_m"]) > float(rows[len(rows) // 2]["crack_length_m"]) > 0  # the crack grows
    assert crack_tip > tip1  # ... ahead of the deposit: a wedge
    # deposit pressure: below the kinetic stall pressure nF|eta|/Omega, above the plane strength
    p = max(float(r["max_pressure_Pa"]) for r in rows)
    assert cfg.fracture.strength_plane < p < 0.15 * 96485.33 / cfg.materials.sodium.molar_volume
