"""Coupled solver cost on micro_polycrystal at three resolutions.

Runs a fixed number of time steps of configs/micro_polycrystal.yaml at three
mesh sizes and prints DOFs, steps, staggered/Newton/Krylov iterations per
step, fracture sub-iterations per step, the simulated time reached, wall
time per step and the split of time by phase. Run it on 1 and on
2 ranks:

    docker/envrun python3 benchmarks/coupled.py [--steps 5]
    docker/envrun mpirun -n 2 python3 benchmarks/coupled.py [--steps 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

from mpi4py import MPI

from solver.config import load_config
from solver.run import run

ROOT = Path(__file__).resolve().parents[1]
LEVELS = [("coarse", "1.2 um", "0.3 um"), ("medium", "0.8 um", "0.2 um"), ("fine", "0.6 um", "0.15 um")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--config", default=str(ROOT / "configs/micro_polycrystal.yaml"))
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    rows = []
    for name, h, h_fine in LEVELS:
        out = ROOT / "build" / "bench-coupled" / f"{name}-np{comm.size}"
        if comm.rank == 0:
            shutil.rmtree(out, ignore_errors=True)
        comm.barrier()
        cfg = load_config(args.config, [f"mesh.h={h}", f"mesh.h_fine={h_fine}", f"time.max_steps={args.steps}",
                                        "output.every=1000", "output.checkpoint_every=1000"])
        run(cfg, out, comm=comm)
        if comm.rank == 0:
            summary = json.loads((out / "summary.json").read_text())
            with open(out / "scalars.csv") as fh:
                sc = list(csv.DictReader(fh))
            n = max(1, len(sc))
            step_wall = sum(float(r.get("step_wall_s") or 0) for r in sc) / n
            rows.append((name, h_fine, sum(summary["dofs"].values()), len(sc),
                         sum(int(r["stagger_iterations"]) for r in sc) / n,
                         sum(int(r["newton_iterations"]) for r in sc) / n,
                         sum(int(r["krylov_iterations"]) for r in sc) / n,
                         sum(int(r.get("fracture_iterations") or 0) for r in sc) / n,
                         float(sc[-1]["time_s"]) if sc else 0.0,
                         step_wall, summary["wall_split_s"]))
    if comm.rank == 0:
        print(f"\ncoupled micro_polycrystal, {comm.size} rank(s), {args.steps} steps per level")
        print(f"{'level':>7} {'h_fine':>8} {'DOFs':>8} {'steps':>6} {'stag/st':>8} {'newton/st':>10} "
              f"{'ksp/st':>8} {'frac/st':>8} {'t_end':>8} {'s/step':>8}  split (mesh/mech/elchem/frac/output, s)")
        for name, hf, dofs, steps, stag, newt, ksp, frac, t_end, sps, split in rows:
            sp = "/".join(f"{split[k]:.1f}" for k in ("mesh", "mechanics", "electrochemistry", "fracture", "output"))
            print(f"{name:>7} {hf:>8} {dofs:>8d} {steps:>6d} {stag:>8.1f} {newt:>10.1f} {ksp:>8.0f} {frac:>8.1f} "
                  f"{t_end:>8.3g} {sps:>8.2f}  {sp}")


if __name__ == "__main__":
    main()
