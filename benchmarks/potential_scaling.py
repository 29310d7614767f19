"""Potential solve (CG + GAMG) at three mesh sizes: DOFs, Krylov iterations,
seconds per solve and per DOF. Run on any number of ranks:

    docker/envrun mpirun -n 2 python3 benchmarks/potential_scaling.py
"""

from __future__ import annotations

import time

from mpi4py import MPI

from solver.physics.conduction import ConductionProblem
from solver.config import validate
from solver.mesh.domain import rectangle_domain


def main(hs=("0.4 um", "0.2 um", "0.1 um")):
    comm = MPI.COMM_WORLD
    rows = []
    for h in hs:
        cfg = validate({"mesh": {"width": "40 um", "height": "20 um", "h": h, "grains": 12, "seed": 3}})
        dom = rectangle_domain(cfg, comm)
        prob = ConductionProblem(dom, 1.0, 0.01)
        prob.solve_voltage(0.1)  # warm-up: JIT, matrix assembly
        comm.barrier()
        t0 = time.perf_counter()
        its = prob.solve_voltage(0.1)
        comm.barrier()
        sec = time.perf_counter() - t0
        rows.append((h, prob.dofs(), its, sec, sec / prob.dofs() * comm.size))
    if comm.rank == 0:
        print(f"potential: CG + GAMG, 12 grains, sigma_par/sigma_perp = 100, ranks = {comm.size}")
        print(f"{'h':>8} {'DOFs':>10} {'KSP its':>8} {'s/solve':>9} {'core-us/DOF':>12}")
        for h, n, its, sec, per in rows:
            print(f"{h:>8} {n:>10d} {its:>8d} {sec:>9.3f} {1e6 * per:>12.2f}")


if __name__ == "__main__":
    main()
