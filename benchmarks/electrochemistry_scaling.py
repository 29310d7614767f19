"""Scaling of the coupled (xi, c~, phi) Newton solve under mesh refinement.

    docker/envrun python3 benchmarks/electrochemistry_scaling.py [--pc NAME ...] [--sizes 32 64 128]
    docker/envrun mpirun -n 2 python3 benchmarks/electrochemistry_scaling.py

Problem: 10 x 10 um, 6 grains with random conduction-plane angles (pixelated
Voronoi), a 1 um Na layer on the plating electrode plus a 1.5 um nucleus,
galvanostatic 50 A/m^2 (bordered Newton: two Krylov solves per Newton
iteration), dt = 1 s, 6 steps; the first step (profile relaxation from the
initial guess) is included. Prints, per preconditioner and mesh: DOFs,
Newton iterations per step, Krylov iterations per linear solve, seconds per
DOF per step.
"""

from __future__ import annotations

import argparse
import time

from mpi4py import MPI

VARIANTS = {
    # default: multiplicative fieldsplit over (xi, c~, phi), BoomerAMG per field
    "fieldsplit-hypre": {},
    "fieldsplit-gamg": {"fieldsplit_0_pc_type": "gamg", "fieldsplit_1_pc_type": "gamg", "fieldsplit_2_pc_type": "gamg"},
    "fieldsplit-additive-hypre": {"pc_fieldsplit_type": "additive"},
    "hypre": {"pc_type": "hypre", "pc_hypre_boomeramg_nodal_coarsen": 1, "pc_hypre_boomeramg_vec_interp_variant": 0},
    "gamg": {"pc_type": "gamg"},
    "bjacobi-ilu": {"pc_type": "bjacobi", "sub_pc_type": "ilu"},
}


def run(variant: str, n: int, steps: int, comm) -> dict:
    from solver.config import validate
    from solver.mesh.domain import rectangle_domain
    from solver.physics.electrochemistry import ElectrochemistryProblem

    raw = {
        "mesh": {"width": "10 um", "height": "10 um", "structured": n, "grains": 6, "seed": 3,
                 "orientation": {"mode": "random", "seed": 5}},
        "electrochemistry": {"initial_na": [
            {"type": "layer", "thickness": "1 um"},
            {"type": "circle", "center": ["5 um", "1 um"], "radius": "1.5 um"}]},
        "loading": {"electrical": {"control": "galvanostatic", "current_density": 50.0}},
        "solver": {"petsc": {"electrochemistry": VARIANTS[variant]}},
    }
    cfg = validate(raw)
    ec = ElectrochemistryProblem(rectangle_domain(cfg, comm), cfg)
    newton = krylov = 0
    t, dt = 0.0, 1.0
    t0 = time.perf_counter()
    failed = ""
    for _ in range(steps):
        try:
            stats = ec.solve(t + dt, dt)
            its, kits = stats["newton_iterations"], stats["krylov_iterations"]
        except Exception as exc:  # report, do not stop the table
            failed = type(exc).__name__
            break
        newton += its
        krylov += kits
        t += dt
    wall = time.perf_counter() - t0
    solves = newton * 2  # galvanostatic: 2 Krylov solves per Newton iteration
    return {"dofs": ec.dofs(), "newton_per_step": newton / steps, "krylov_per_solve": krylov / max(solves, 1),
            "s_per_dof_step": wall / steps / ec.dofs(), "wall": wall, "failed": failed}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pc", nargs="*", default=list(VARIANTS))
    ap.add_argument("--sizes", nargs="*", type=int, default=[32, 64, 128])
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    rows = []
    for v in args.pc:
        for n in args.sizes:
            r = run(v, n, args.steps, comm)
            rows.append((v, n, r))
            if comm.rank == 0:
                print(f"{v:26s} n={n:4d} dofs={r['dofs']:7d} newton/step={r['newton_per_step']:5.2f} "
                      f"krylov/solve={r['krylov_per_solve']:6.1f} s/dof/step={r['s_per_dof_step']:.2e} "
                      f"wall={r['wall']:6.1f}s {r['failed']}", flush=True)
    if comm.rank == 0:
        print(f"\nranks = {comm.size}")
        print(f"{'preconditioner':26s} {'cells/side':>10s} {'DOFs':>8s} {'Newton/step':>11s} "
              f"{'Krylov/solve':>12s} {'s/DOF/step':>11s}")
        for v, n, r in rows:
            print(f"{v:26s} {n:10d} {r['dofs']:8d} {r['newton_per_step']:11.2f} {r['krylov_per_solve']:12.1f} "
                  f"{r['s_per_dof_step']:11.2e} {r['failed']}")


if __name__ == "__main__":
    main()
