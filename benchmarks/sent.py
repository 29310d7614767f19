"""Miehe's single-edge-notched tension / shear tests (docs/verification-plan.md F4).

1 x 1 mm plate, geometric slit from the left edge to the centre (y = 0.5 mm),
E = 210 GPa, nu = 0.3, Gc = 2.7 N/mm, plane strain, `energy` model (AT2,
Miehe 2010), spectral split by default. Bottom edge clamped; top edge moved
as a rigid grip: u = (0, t) (tension) or u = (t, 0) (shear); the sides are
free. Each load step is staggered (mechanics <-> damage) until
max |d_k - d_{k-1}| < --tol. Published peak forces (Miehe, Hofacker,
Welschinger 2010): 0.70 kN/mm at u ~ 5.5e-3 mm (tension) and ~0.53 kN/mm
(shear). In shear the vertical displacement of the left and right edges is
held (u_y = 0) unless --free-sides.

    docker/envrun python3 benchmarks/sent.py --case tension --n 134
    docker/envrun mpirun -n 2 python3 benchmarks/sent.py --case shear --n 134

Prints h, l, DOFs, the force-displacement curve (optional CSV) and the peak.

Measured (n = 134: h = 0.00746 mm = l/2.01, l = 0.015 mm, 36584 u + 18292 d
DOFs, 1 rank on a shared 2-core machine):
  tension, spectral split: peak 0.742 kN/mm at u = 5.82e-3 mm (+6.0%), 269 s
  tension, volumetric_deviatoric: peak 0.724 kN/mm at u = 5.78e-3 mm (+3.5%), 402 s (loaded machine)
  shear (sides held), spectral: peak 0.583 kN/mm at u = 1.105e-2 mm (+10%),
  run stopped at u = 1.24e-2 mm (F = 0.561, declining) after ~15 min
Units: internal um / MPa; printed in mm and kN/mm (1 kN/mm = 1e6 N/m).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solver.config import validate  # noqa: E402
from solver.physics.fracture import FractureProblem, slit_rectangle_domain  # noqa: E402
from solver.physics.mechanics import MechanicsProblem  # noqa: E402

PUBLISHED = {"tension": 0.70, "shear": 0.53}  # kN/mm


def build(args, comm):
    W = 1000.0  # um
    l_um = args.l * 1e3
    direction = [0.0, 1.0] if args.case == "tension" else [1.0, 0.0]
    cfg = validate({
        "mesh": {"width": 1e-3, "height": 1e-3},
        "electrochemistry": {"enabled": False},
        "materials": {"electrolyte": {"youngs_modulus": 210e9, "poisson_ratio": 0.3}},
        "mechanics": {"split": args.split, "residual_stiffness": args.kres, "eigenstrain": 0.0},
        "fracture": {"model": "energy", "length_scale": l_um * 1e-6, "critical_energy_release_rate": 2700.0},
        "loading": {"mechanical": {"type": "displacement", "boundary": "counter_electrode",
                                   "fixed": "plating_electrode", "support": "clamped",
                                   "direction": direction,
                                   "value": {"points": [[0.0, 0.0], [1.0e4, 1.0e-2]]}}},  # t [s] = u [um]
    })
    dom = slit_rectangle_domain(comm, W, W, args.n, args.n, slit_length=W / 2, diagonal=args.diagonal)
    mp = MechanicsProblem(dom, cfg)
    if args.case == "shear" and args.hold_sides:
        mp.add_dirichlet("outer", 1, 0.0)  # u_y = 0 on the left and right edges
    fp = FractureProblem(dom, cfg, mp)
    return cfg, dom, mp, fp


def load_steps(args):
    """Displacements [um]: du1 up to u_switch, then du2 up to u_max."""
    u1 = np.arange(args.du1, args.u_switch + 1e-12, args.du1)
    u2 = np.arange(u1[-1] + args.du2, args.u_max + 1e-12, args.du2)
    return np.concatenate([u1, u2]) * 1e3  # mm -> um


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=["tension", "shear"], default="tension")
    p.add_argument("--n", type=int, default=134, help="cells per side (h = 1 mm / n)")
    p.add_argument("--l", type=float, default=0.015, help="length scale [mm]")
    p.add_argument("--split", default="spectral", choices=["spectral", "volumetric_deviatoric", "none"])
    p.add_argument("--kres", type=float, default=1e-6)
    p.add_argument("--diagonal", default="right", choices=["right", "crossed"])
    p.add_argument("--du1", type=float, default=1e-4, help="coarse displacement step [mm]")
    p.add_argument("--du2", type=float, default=1e-5, help="fine displacement step [mm]")
    p.add_argument("--u-switch", type=float, default=None, help="switch to du2 here [mm]")
    p.add_argument("--u-max", type=float, default=None, help="last displacement [mm]")
    p.add_argument("--tol", type=float, default=1e-3, help="stagger tolerance on max |dd|")
    p.add_argument("--max-stagger", type=int, default=200)
    p.add_argument("--stop-drop", type=float, default=0.3, help="stop when F < this x peak after the peak")
    p.add_argument("--csv", type=str, default=None)
    p.add_argument("--free-sides", dest="hold_sides", action="store_false",
                   help="shear: leave the sides free (default: u_y = 0 on the left and right edges)")
    args = p.parse_args(argv)
    if args.u_switch is None:
        args.u_switch = 4.5e-3 if args.case == "tension" else 8e-3
    if args.u_max is None:
        args.u_max = 7e-3 if args.case == "tension" else 20e-3
    comm = MPI.COMM_WORLD
    say = print if comm.rank == 0 else (lambda *a, **k: None)
    t0 = time.perf_counter()
    cfg, dom, mp, fp = build(args, comm)
    h = 1.0 / args.n
    comp = 1 if args.case == "tension" else 0
    say(f"SENT {args.case}: h = {h:.5f} mm, l = {args.l} mm (h/l = {h / args.l:.3f}), split {args.split}, "
        f"u dofs {mp.dofs()}, d dofs {fp.dofs()}, ranks {comm.size}")
    rows = []
    peak, u_peak = 0.0, 0.0
    mech_its = dmg_its = stag_total = 0
    t_mech = t_dmg = 0.0
    for u in load_steps(args):
        for k in range(args.max_stagger):
            d0 = fp.d.x.array.copy()
            ta = time.perf_counter()
            mech_its += mp.solve(u)["krylov_iterations"]
            tb = time.perf_counter()
            fp.update_history()
            dmg_its += fp.solve()["krylov_iterations"]
            t_mech += tb - ta
            t_dmg += time.perf_counter() - tb
            change = comm.allreduce(np.abs(fp.d.x.array - d0).max(), op=MPI.MAX)
            if change < args.tol:
                break
        stag_total += k + 1
        F = mp.reaction_force("counter_electrode")[comp] / 1e6  # kN/mm
        rows.append((u / 1e3, F, fp.crack_length() * 1e3, k + 1))
        if F > peak:
            peak, u_peak = F, u / 1e3
        say(f"  u = {u / 1e3:.5e} mm  F = {F:.4f} kN/mm  crack {fp.crack_length() * 1e3:.4f} mm  "
            f"stagger {k + 1}  max d {fp.max_damage():.3f}", flush=True)
        if peak > 0 and F < args.stop_drop * peak:
            break
    wall = time.perf_counter() - t0
    err = (peak / PUBLISHED[args.case] - 1) * 100
    say(f"RESULT {args.case}: peak F = {peak:.4f} kN/mm at u = {u_peak:.4e} mm "
        f"(published {PUBLISHED[args.case]:.2f}; {err:+.1f}%), h = {h:.5f} mm, l = {args.l} mm, "
        f"DOFs u {mp.dofs()} + d {fp.dofs()}, steps {len(rows)}, stagger iterations {stag_total}, "
        f"Krylov its mech {mech_its} / damage {dmg_its}, time {wall:.1f} s "
        f"(mechanics {t_mech:.1f} s, damage {t_dmg:.1f} s), ranks {comm.size}")
    if args.csv and comm.rank == 0:
        np.savetxt(args.csv, np.array(rows), delimiter=",", header="u_mm,F_kN_per_mm,crack_length_mm,stagger",
                   comments="")
    return peak


if __name__ == "__main__":
    main()
