"""Scalability of the elasticity and damage solves (issue 4, Performance).

Problem: 40 x 40 um single crystal, bottom clamped, a soft Na inclusion
(K = 6.3 GPa, G = 0.1 GPa against E = 200 GPa: a stiffness contrast of
~10^3 in shear) of radius 5 um at the electrode with eigenstrain 0.05,
top pulled by 0.02 um. Then one damage solve (`energy` model, l = 1 um)
with the resulting history field and a damaged band d -> 1 along a line
(which makes the elasticity matrix ill-conditioned: k_res = 1e-6).

For each mesh: DOFs, Krylov iterations and seconds per solve
(assembly + GAMG setup + CG) of the elasticity (intact and with the
damaged band) and the damage equation; seconds per 1e5 DOFs.

    docker/envrun python3 benchmarks/mechanics_scaling.py [--sizes 50 100 200]
    docker/envrun mpirun -n 2 python3 benchmarks/mechanics_scaling.py
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
from solver.mesh.domain import rectangle_domain  # noqa: E402
from solver.physics.fracture import FractureProblem  # noqa: E402
from solver.physics.mechanics import MechanicsProblem  # noqa: E402


def run(n, comm, split, petsc=None, inclusion=True):
    cfg = validate({
        "mesh": {"width": 40e-6, "height": 40e-6, "structured": n,
                 "orientation": {"mode": "given", "angles": [0.5]}},
        "electrochemistry": {"enabled": False},
        "mechanics": {"eigenstrain": 0.05, "split": split},
        "fracture": {"model": "energy", "length_scale": 1e-6},
        "loading": {"mechanical": {"type": "displacement", "boundary": "counter_electrode",
                                   "direction": [0.0, 1.0], "value": 0.02e-6}},
        "solver": {"petsc": {"mechanics": petsc or {}}},
    })
    dom = rectangle_domain(cfg, comm)
    mp = MechanicsProblem(dom, cfg)
    if inclusion:
        mp.xi.interpolate(lambda x: ((x[0] - 20.0) ** 2 + x[1] ** 2 < 25.0).astype(float))
    fp = FractureProblem(dom, cfg, mp)
    out = {"n": n, "u_dofs": mp.dofs(), "d_dofs": fp.dofs()}
    mp.solve(0.0)  # warm-up (JIT, first setup)
    mp.u.x.array[:] = 0.0  # time a solve from zero
    comm.barrier()
    t = time.perf_counter()
    out["mech_its"] = mp.solve(0.0)["krylov_iterations"]
    out["mech_newton"] = mp.newton_iterations
    out["mech_s"] = time.perf_counter() - t
    fp.update_history()
    fp.solve()
    comm.barrier()
    fp.H.x.array[:] *= 1.0  # same H, time a second solve
    t = time.perf_counter()
    out["dmg_its"] = fp.solve()["krylov_iterations"]
    out["dmg_s"] = time.perf_counter() - t
    # a damaged band (fully broken line from the inclusion upwards)
    fp.d.interpolate(lambda x: np.exp(-np.abs(x[0] - 20.0) / 1.0) * (x[1] < 30.0))
    mp.u.x.array[:] = 0.0
    comm.barrier()
    t = time.perf_counter()
    out["mech_d_its"] = mp.solve(0.0)["krylov_iterations"]
    out["mech_d_newton"] = mp.newton_iterations
    out["mech_d_s"] = time.perf_counter() - t
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200], help="cells per side")
    p.add_argument("--split", default="volumetric_deviatoric")
    args = p.parse_args(argv)
    comm = MPI.COMM_WORLD
    rows = [run(n, comm, args.split) for n in args.sizes]
    if comm.rank == 0:
        print(f"mechanics/damage scaling, {comm.size} rank(s), split {args.split}, CG + GAMG "
              f"(rigid-body near-nullspace for u), ksp_rtol 1e-10")
        hdr = (f"{'cells/side':>10} {'u DOFs':>9} {'its':>5} {'s/solve':>8} {'s/1e5dof':>9} | "
               f"{'+crack its':>10} {'s/solve':>8} | {'d DOFs':>8} {'its':>5} {'s/solve':>8} {'s/1e5dof':>9}")
        print(hdr)
        for r in rows:
            print(f"{r['n']:>10} {r['u_dofs']:>9} {r['mech_its']:>5} {r['mech_s']:>8.3f} "
                  f"{r['mech_s'] / r['u_dofs'] * 1e5:>9.3f} | {r['mech_d_its']:>10} {r['mech_d_s']:>8.3f} | "
                  f"{r['d_dofs']:>8} {r['dmg_its']:>5} {r['dmg_s']:>8.3f} {r['dmg_s'] / r['d_dofs'] * 1e5:>9.3f}")
        print("(its = Krylov iterations summed over the Newton steps; "
              f"Newton steps: {[r['mech_newton'] for r in rows]} intact, {[r['mech_d_newton'] for r in rows]} cracked)")


if __name__ == "__main__":
    main()
