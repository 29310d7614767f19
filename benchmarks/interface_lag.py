"""How far the diffuse interface lags behind Butler-Volmer kinetics.

    docker/envrun python3 benchmarks/interface_lag.py [--ratios 0.1 0.3 1 3 10] [--voltage 0.2]

The planar front of docs/verification-plan.md E1 (a 0.25 um wide column, 4 um high,
80 cells, a 1 um Na layer, fast isotropic transport, delta = 0.2 um) is
driven at a fixed cell voltage V. The sharp-interface speed is
v_BV = 1.5 delta L_eta |B|, |B| = |exp(-(1 - alpha) f V) - exp(alpha f V)|;
it holds while the profile relaxes (rate L_sigma W) faster than the
Butler-Volmer term transforms it (rate L_eta |B|). For each ratio
L_sigma W / (L_eta |B|) the script sets L_sigma, runs the front ~1 um and
prints the measured speed over v_BV (slope of the metal area over the second
half of the run), with DOFs, steps and wall time. The pre-flight warning of
solver/preflight.py fires below a ratio of 0.5.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from mpi4py import MPI


def front_speed_ratio(ratio: float, voltage: float, comm) -> dict:
    from solver.config import validate
    from solver.mesh.domain import rectangle_domain
    from solver.physics.electrochemistry import ElectrochemistryProblem, bv_bracket, derived_parameters

    raw = {
        "mesh": {"width": "0.25 um", "height": "4 um", "structured": 80},
        "materials": {"electrolyte": {"conductivity_parallel": 100.0, "conductivity_perpendicular": 100.0,
                                      "diffusivity_parallel": 3e-9, "diffusivity_perpendicular": 3e-9}},
        "electrochemistry": {"interface_width": "0.2 um", "initial_na": [{"type": "layer", "thickness": "1 um"}]},
        "loading": {"electrical": {"control": "potentiostatic", "voltage": voltage}},
    }

    P = derived_parameters(validate(raw))
    B = abs(bv_bracket(-voltage, 0.5, P["f_1_V"]))
    raw["electrochemistry"]["interface_mobility"] = ratio * P["L_eta_1_s"] * B / P["W_J_m3"]
    cfg = validate(raw)
    ec = ElectrochemistryProblem(rectangle_domain(cfg, comm), cfg)
    v_bv = P["planar_velocity_per_B_m_s"] * B
    steps = 40
    dt = 1.0e-6 / v_bv / steps
    t0, rows, t = time.perf_counter(), [], 0.0
    for _ in range(steps):
        ec.solve(t + dt, dt)
        ec.commit()
        t += dt
        rows.append((t, ec.scalars(t)["metal_area_m2"]))
    rows = np.array(rows[steps // 2:])
    v = np.polyfit(rows[:, 0], rows[:, 1], 1)[0] / 0.25e-6
    return {"ratio": ratio, "L_sigma": raw["electrochemistry"]["interface_mobility"], "speed": v / v_bv,
            "dofs": ec.dofs(), "steps": steps, "wall": time.perf_counter() - t0}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.1, 0.3, 1.0, 3.0, 10.0])
    ap.add_argument("--voltage", type=float, default=0.2, help="cell voltage [V]")
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    if comm.rank == 0:
        print(f"planar front, delta = 0.2 um, V = {args.voltage} V, {comm.size} rank(s)")
        print(f"{'L_sigma W/(L_eta|B|)':>21} {'L_sigma [m^3/(J s)]':>20} {'v / v_BV':>9} {'DOFs':>6} {'steps':>6} {'wall [s]':>9}")
    for r in args.ratios:
        row = front_speed_ratio(r, args.voltage, comm)
        if comm.rank == 0:
            print(f"{row['ratio']:21.3g} {row['L_sigma']:20.3g} {row['speed']:9.3f} {row['dofs']:6d} "
                  f"{row['steps']:6d} {row['wall']:9.2f}", flush=True)


if __name__ == "__main__":
    main()
