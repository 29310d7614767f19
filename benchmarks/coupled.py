"""Cost of a coupled step: monolithic vs staggered, at three mesh sizes.

Runs a fixed number of time steps of a config (default
configs/macro_fractal.yaml) with each coupling scheme at three mesh sizes
(mesh.h, and mesh.h_fine when the config has one, times each --scale) and
prints per level and scheme:

  DOFs, steps, simulated time reached,
  coupled iterations per step (staggered iterations, or monolithic passes),
  Newton and Krylov iterations per step,
  linear solves per step by field (PETSc KSPSolve count in each log stage:
  coupled, mechanics, electrochemistry, fracture),
  seconds per step in assembly / linear solves / other
  (the PETSc event nacrackAssembly, KSPSolve, and the rest of the step),
  and CPU seconds per step (user + system of the slowest rank: on a shared
  machine a fairer measure of the work than wall time),

then the growth exponent a of the cost per step, s/step ~ DOFs^a, fitted over
the three sizes. Run on 1 or 2 ranks:

    docker/envrun mpirun -n 2 python3 benchmarks/coupled.py [--steps 10] [--config ...]
        [--coupling monolithic staggered] [--scale 1.4 1.0 0.7]
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import shutil
from pathlib import Path

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

from solver.config import load_config
from solver.run import PHASES, run

ROOT = Path(__file__).resolve().parents[1]


def read_run(out: Path) -> tuple[dict, list[dict]]:
    """A finished run's summary.json and scalars.csv rows (rank 0's view)."""
    summary = json.loads((out / "summary.json").read_text())
    with open(out / "scalars.csv") as fh:
        return summary, list(csv.DictReader(fh))


def _perf(event: str) -> dict:
    """{stage: (count, time)} of a PETSc event, cumulative since PETSc.Log.begin()."""
    ev = PETSc.Log.Event(event)
    out = {}
    for name in PHASES:
        info = ev.getPerfInfo(PETSc.Log.Stage(name))
        out[name] = (int(info["count"]), float(info["time"]))
    return out


def _diff(after: dict, before: dict) -> dict:
    return {k: (after[k][0] - before[k][0], after[k][1] - before[k][1]) for k in after}


def _length(q: str) -> tuple[float, str]:
    value, unit = q.split()
    return float(value), unit


def one_run(config: str, coupling: str, scale: float, steps: int, comm) -> dict:
    raw = load_config(config)
    overrides = [f"solver.coupling={coupling}", f"time.max_steps={steps}", "output.every=100000",
                 "output.checkpoint_every=100000", "output.checkpoint_wall_time=0 s"]
    for key in ("h", "h_fine"):
        val = getattr(raw.mesh, key, None)
        if val:
            overrides.append(f"mesh.{key}={val * scale * 1e6:.6g} um")
    cfg = load_config(config, overrides)
    out = ROOT / "build" / "bench-coupled" / f"{Path(config).stem}-{coupling}-x{scale:g}-np{comm.size}"
    if comm.rank == 0:
        shutil.rmtree(out, ignore_errors=True)
    comm.barrier()
    ksp0, asm0 = _perf("KSPSolve"), _perf("nacrackAssembly")
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    run(cfg, out, comm=comm)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds of this rank (user + system): on a shared, loaded machine a
    # fairer measure of the work than wall time; the slowest rank's
    cpu = comm.allreduce((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime), op=MPI.MAX)
    ksp, asm = _diff(_perf("KSPSolve"), ksp0), _diff(_perf("nacrackAssembly"), asm0)
    # MPI: the slowest rank's times
    ksp = {k: (c, comm.allreduce(t, op=MPI.MAX)) for k, (c, t) in ksp.items()}
    asm = {k: (c, comm.allreduce(t, op=MPI.MAX)) for k, (c, t) in asm.items()}
    if comm.rank != 0:
        return {}
    summary, sc = read_run(out)
    n = max(1, len(sc))
    step_wall = sum(float(r.get("step_wall_s") or 0) for r in sc)

    def per_step(key):
        return sum(float(r.get(key) or 0) for r in sc) / n

    coupled_its = [int(r["stagger_iterations"]) for r in sc]
    solve_t = sum(t for _, t in ksp.values())
    asm_t = sum(t for k, (_, t) in asm.items() if k != "mesh")
    return {
        "coupling": coupling, "scale": scale, "dofs": sum(summary["dofs"].values()), "steps": len(sc),
        "t_end": float(sc[-1]["time_s"]) if sc else 0.0, "status": summary["status"],
        "coupled_median": float(np.median(coupled_its)) if coupled_its else 0.0,
        "newton": per_step("newton_iterations"), "krylov": per_step("krylov_iterations"),
        "solves": {k: c / n for k, (c, _) in ksp.items() if k in ("coupled", "mechanics", "electrochemistry", "fracture")},
        "s_step": step_wall / n, "assembly": asm_t / n, "solve": solve_t / n,
        "other": max(0.0, step_wall - asm_t - solve_t) / n,
        "cpu_step": cpu / n,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--config", default=str(ROOT / "configs/macro_fractal.yaml"))
    ap.add_argument("--coupling", nargs="+", default=["monolithic", "staggered"])
    ap.add_argument("--scale", nargs="+", type=float, default=[1.4, 1.0, 0.7])
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    PETSc.Log.begin()
    rows = [one_run(args.config, c, s, args.steps, comm) for c in args.coupling for s in args.scale]
    if comm.rank:
        return
    print(f"\n{Path(args.config).name}, {comm.size} rank(s), {args.steps} steps per run")
    print(f"{'coupling':>10} {'DOFs':>7} {'steps':>5} {'t [s]':>8} {'coup/st':>7} {'newt/st':>7} {'ksp/st':>7} "
          f"{'solves/st coup|mech|ec|frac':>28} {'s/step':>7} {'asm':>6} {'solve':>6} {'other':>6} {'cpu/st':>7}")
    for r in rows:
        sv = r["solves"]
        solves = "|".join(f"{sv.get(k, 0):.1f}" for k in ("coupled", "mechanics", "electrochemistry", "fracture"))
        print(f"{r['coupling']:>10} {r['dofs']:>7d} {r['steps']:>5d} {r['t_end']:>8.3g} {r['coupled_median']:>7.1f} "
              f"{r['newton']:>7.1f} {r['krylov']:>7.0f} {solves:>28} {r['s_step']:>7.2f} {r['assembly']:>6.2f} "
              f"{r['solve']:>6.2f} {r['other']:>6.2f} {r['cpu_step']:>7.2f}")
    for c in args.coupling:
        sel = [r for r in rows if r["coupling"] == c and r["steps"]]
        if len(sel) >= 2:
            x = np.log([r["dofs"] for r in sel])
            a = np.polyfit(x, np.log([r["s_step"] for r in sel]), 1)[0]
            b = np.polyfit(x, np.log([r["cpu_step"] for r in sel]), 1)[0]
            print(f"{c}: cost per step ~ DOFs^{a:.2f} (wall), DOFs^{b:.2f} (CPU) over {sel[0]['dofs']} -> "
                  f"{sel[-1]['dofs']} DOFs")


if __name__ == "__main__":
    main()
