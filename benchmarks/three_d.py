"""What 3D costs: configs/micro_polycrystal_3d.yaml against its 2D
counterpart, under mesh refinement, and on 1, 2 and 4 ranks (issue 25).

Three parts, each a few time steps of a config (not a run to the end):

  cost    cost per DOF per step, 3D (micro_polycrystal_3d.yaml, 28k DOFs) vs
          2D (micro_polycrystal.yaml, 23k DOFs: the same physics, 24 grains,
          a Na notch and layer at 0.15 V). Prints per config DOFs, steps,
          simulated time reached, Newton and Krylov iterations per step,
          linear solves per step, wall and CPU seconds per step (CPU: user +
          system of the slowest rank, the fairer measure on a shared
          machine) and CPU microseconds per DOF per step, then the ratio
          3D / 2D.
  krylov  Krylov iterations per linear solve of the 3D config at three mesh
          sizes (mesh.h and mesh.h_fine times each --scale; the interface
          width and the fracture length stay), separately for the coupled
          Newton solve (monolithic coupling) and for the fracture stage
          (its mechanics and damage solves), and the spread
          (max - min) / min of each over the sizes: the issue asks for
          iterations flat within 30%. The fracture stage is also split
          into its mechanics and its damage solves. The strengths are lowered
          (--weak: bulk 30 MPa, planes and grain boundaries 3 MPa, ten times
          below the config's) so that the ceramic cracks within the few steps
          and the fracture stage solves for a moving damage field.
  ranks   the 3D config's steps on 1, 2 and 4 ranks (this script runs
          mpirun itself). On a 2-core machine 4 ranks are oversubscribed
          (mpirun --oversubscribe): they show the cost of oversubscription,
          not of scaling.

Run (cost and krylov on 1 or 2 ranks; ranks from a plain python3):

    docker/envrun mpirun -n 2 python3 benchmarks/three_d.py cost [--steps 8]
    docker/envrun mpirun -n 2 python3 benchmarks/three_d.py krylov [--steps 8] [--scale 1.8 1.2 0.8]
    docker/envrun python3 benchmarks/three_d.py ranks [--steps 8] [--ranks 1 2 4]

Outputs go to build/bench-three-d/. The numbers are machine and load
dependent: quote them with the load (uptime).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG_3D = ROOT / "configs" / "micro_polycrystal_3d.yaml"
CONFIG_2D = ROOT / "configs" / "micro_polycrystal.yaml"
OUT = ROOT / "build" / "bench-three-d"
QUIET = ["output.every=100000", "output.checkpoint_every=100000", "output.checkpoint_wall_time=0 s"]
# --weak: strengths low enough that the 3D config cracks within a few steps
WEAK = ["fracture.strength_bulk=30 MPa", "fracture.strength_plane=3 MPa", "fracture.strength_grain_boundary=3 MPa"]


class Counter:
    """Linear solves and Krylov iterations by where they happen: the coupled
    Newton (monolithic), the fracture stage (mechanics and damage solves
    inside it), and the rest (staggered fallback steps, the initial
    mechanics). Installed by patching the solver classes of this process."""

    def __init__(self):
        keys = ("coupled", "fracture", "fracture:mechanics", "fracture:damage", "other")
        self.n = dict.fromkeys(keys, 0)
        self.its = dict.fromkeys(keys, 0)
        self._in_fracture = 0

    def install(self):
        from solver.coupling.monolithic import MonolithicCoupling
        from solver.coupling.staggered import CoupledSolver
        from solver.numerics.linalg import LinearSolver

        me = self
        solve, stage, coupled = LinearSolver.solve, CoupledSolver._fracture_stage, MonolithicCoupling.solve_coupled

        def counted_solve(self, u):
            its = solve(self, u)
            keys = ["other"]
            if me._in_fracture:
                keys = ["fracture", "fracture:damage" if self.prefix.startswith("fracture") else "fracture:mechanics"]
            for key in keys:
                me.n[key] += 1
                me.its[key] += int(its)
            return its

        def counted_stage(self, t):
            me._in_fracture += 1
            try:
                return stage(self, t)
            finally:
                me._in_fracture -= 1

        def counted_coupled(self, t, dt):
            ns = coupled(self, t, dt)
            me.n["coupled"] += int(ns.linear_solves)
            me.its["coupled"] += int(ns.krylov_iterations)
            return ns

        LinearSolver.solve, CoupledSolver._fracture_stage = counted_solve, counted_stage
        MonolithicCoupling.solve_coupled = counted_coupled

    def reset(self):
        self.n = dict.fromkeys(self.n, 0)
        self.its = dict.fromkeys(self.its, 0)


COUNTER = Counter()


def steps_of(config: Path, steps: int, extra=(), scale: float = 1.0, tag: str = "") -> dict:
    """``steps`` time steps of ``config`` on MPI.COMM_WORLD: DOFs, iterations,
    solves and seconds (rank 0 gets the dict, the others {})."""
    from mpi4py import MPI

    from solver.config import load_config
    from solver.run import run
    from coupled import read_run  # benchmarks/coupled.py (this directory is on sys.path for a script)

    comm = MPI.COMM_WORLD
    base = load_config(config)
    overrides = [f"time.max_steps={steps}", *QUIET, *extra]
    for key in ("h", "h_fine"):
        val = getattr(base.mesh, key, None)
        if val and scale != 1.0:
            overrides.append(f"mesh.{key}={val * scale * 1e6:.6g} um")
    cfg = load_config(config, overrides)
    out = OUT / f"{config.stem}{tag}-x{scale:g}-np{comm.size}"
    if comm.rank == 0:
        shutil.rmtree(out, ignore_errors=True)
    comm.barrier()
    COUNTER.reset()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    run(cfg, out, comm=comm)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = comm.allreduce((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime), op=MPI.MAX)
    n = {k: comm.allreduce(v, op=MPI.MAX) for k, v in COUNTER.n.items()}  # the same on every rank
    its = {k: comm.allreduce(v, op=MPI.MAX) for k, v in COUNTER.its.items()}
    if comm.rank != 0:
        return {}
    summary, sc = read_run(out)
    m = max(1, len(sc))
    wall = sum(float(r.get("step_wall_s") or 0) for r in sc)
    setup = float(summary["wall_time_s"]) - wall
    return {"config": config.name, "scale": scale, "ranks": comm.size, "dofs": sum(summary["dofs"].values()),
            "steps": len(sc), "t_end": float(sc[-1]["time_s"]) if sc else 0.0, "status": summary["status"],
            "newton": sum(float(r["newton_iterations"]) for r in sc) / m,
            "krylov": sum(float(r["krylov_iterations"]) for r in sc) / m,
            "fallbacks": sum(int(float(r.get("staggered_fallback") or 0)) for r in sc),
            "damaged": float(sc[-1].get("crack_length_m") or 0.0) if sc else 0.0,
            "solves": n, "its": its, "s_step": wall / m, "setup_s": setup,
            # CPU of the whole run (mesh, JIT, steps) spread over the steps would bias small runs: scale the
            # CPU to the stepping part by the wall-time share of the steps
            "cpu_step": cpu * wall / max(float(summary["wall_time_s"]), 1e-9) / m,
            "cpu_total": cpu}


def _per_solve(r: dict, key: str) -> float:
    return r["its"][key] / r["solves"][key] if r["solves"][key] else float("nan")


def cost(args):
    from mpi4py import MPI

    rows = [steps_of(CONFIG_2D, args.steps), steps_of(CONFIG_3D, args.steps)]
    if MPI.COMM_WORLD.rank:
        return
    print(f"\ncost per DOF per step, {rows[0]['ranks']} rank(s), {args.steps} steps each (from t = 0)")
    print(f"{'config':>26} {'DOFs':>7} {'steps':>5} {'t [s]':>8} {'newt/st':>7} {'ksp/st':>7} {'solves/st':>9} "
          f"{'s/step':>7} {'cpu/st':>7} {'cpu us/DOF/st':>13}")
    for r in rows:
        solves = sum(r["solves"].values()) / max(r["steps"], 1)
        r["us_dof"] = 1e6 * r["cpu_step"] / r["dofs"]
        print(f"{r['config']:>26} {r['dofs']:>7d} {r['steps']:>5d} {r['t_end']:>8.3g} {r['newton']:>7.1f} "
              f"{r['krylov']:>7.0f} {solves:>9.1f} {r['s_step']:>7.2f} {r['cpu_step']:>7.2f} {r['us_dof']:>13.1f}")
    print(f"3D / 2D cost per DOF per step (CPU): {rows[1]['us_dof'] / rows[0]['us_dof']:.1f}x; "
          f"wall: {(rows[1]['s_step'] / rows[1]['dofs']) / (rows[0]['s_step'] / rows[0]['dofs']):.1f}x")


def krylov(args):
    from mpi4py import MPI

    extra = WEAK if args.weak else []
    rows = [steps_of(CONFIG_3D, args.steps, extra, scale=s, tag="-weak" if args.weak else "") for s in args.scale]
    if MPI.COMM_WORLD.rank:
        return
    print(f"\nKrylov iterations per linear solve under refinement, {CONFIG_3D.name}, {rows[0]['ranks']} rank(s), "
          f"{args.steps} steps{' (strengths lowered: ' + ', '.join(WEAK) + ')' if args.weak else ''}")
    print(f"{'scale':>5} {'DOFs':>7} {'steps':>5} {'t [s]':>8} {'crack [um^2]':>12} {'fallbacks':>9} "
          f"{'coupled solves':>14} {'ksp/solve':>9} {'fracture solves':>15} {'ksp/solve':>9} {'(mech':>6} {'damage)':>7} "
          f"{'s/step':>7}")
    for r in rows:
        print(f"{r['scale']:>5g} {r['dofs']:>7d} {r['steps']:>5d} {r['t_end']:>8.3g} {r['damaged'] * 1e12:>12.3g} "
              f"{r['fallbacks']:>9d} {r['solves']['coupled']:>14d} {_per_solve(r, 'coupled'):>9.1f} "
              f"{r['solves']['fracture']:>15d} {_per_solve(r, 'fracture'):>9.1f} {_per_solve(r, 'fracture:mechanics'):>6.1f} "
              f"{_per_solve(r, 'fracture:damage'):>7.1f} {r['s_step']:>7.2f}")
    for key, name in (("coupled", "coupled Newton"), ("fracture", "fracture stage"),
                      ("fracture:mechanics", "  its mechanics"), ("fracture:damage", "  its damage")):
        vals = [_per_solve(r, key) for r in rows if r["solves"][key]]
        if len(vals) >= 2:
            spread = (max(vals) - min(vals)) / min(vals)
            print(f"{name}: {min(vals):.1f}-{max(vals):.1f} Krylov iterations per solve over {rows[0]['dofs']} -> "
                  f"{rows[-1]['dofs']} DOFs, spread {100 * spread:.0f}% ({'within' if spread <= 0.30 else 'outside'} "
                  f"30%)")


def ranks(args):
    """Runs this script's 'steps' part under mpirun -n N for each N (a plain
    python3 process: no MPI here)."""
    if "OMPI_COMM_WORLD_SIZE" in os.environ or "PMIX_RANK" in os.environ:
        sys.exit("three_d.py ranks starts mpirun itself: run it with a plain python3, not under mpirun")
    env = dict(os.environ)  # envrun's MPI settings (e.g. running as root) go to the mpirun below
    rows = []
    for n in args.ranks:
        res = OUT / f"ranks-np{n}.json"
        res.parent.mkdir(parents=True, exist_ok=True)
        res.unlink(missing_ok=True)
        cmd = ["mpirun", "-n", str(n), *(["--oversubscribe"] if n > (os.cpu_count() or 1) else []),
               sys.executable, __file__, "steps", "--steps", str(args.steps), "--json", str(res)]
        subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        rows.append(json.loads(res.read_text()))
    cores = os.cpu_count() or 1
    print(f"\n{CONFIG_3D.name}, {args.steps} steps from t = 0 on 1, 2, 4 ranks ({cores} cores: more ranks than "
          "cores are oversubscribed)")
    print(f"{'ranks':>5} {'DOFs':>7} {'t [s]':>8} {'newt/st':>7} {'ksp/st':>7} {'s/step':>7} {'cpu/st':>7} "
          f"{'setup s':>7} {'speed-up':>8}")
    for r in rows:
        print(f"{r['ranks']:>5d} {r['dofs']:>7d} {r['t_end']:>8.3g} {r['newton']:>7.1f} {r['krylov']:>7.0f} "
              f"{r['s_step']:>7.2f} {r['cpu_step']:>7.2f} {r['setup_s']:>7.1f} "
              f"{rows[0]['s_step'] / r['s_step']:>7.2f}x{'  (oversubscribed)' if r['ranks'] > cores else ''}")


def steps(args):
    from mpi4py import MPI

    r = steps_of(CONFIG_3D, args.steps)
    if MPI.COMM_WORLD.rank == 0 and args.json:
        Path(args.json).write_text(json.dumps(r))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part", choices=["cost", "krylov", "ranks", "steps"])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--scale", nargs="+", type=float, default=[1.8, 1.2, 0.8])
    ap.add_argument("--weak", action=argparse.BooleanOptionalAction, default=True,
                    help="krylov: lowered strengths, so that the fracture stage has a crack to solve for")
    ap.add_argument("--ranks", nargs="+", type=int, default=[1, 2, 4])
    ap.add_argument("--json", help="steps: write the result here (used by 'ranks')")
    args = ap.parse_args()
    if args.part != "ranks":
        COUNTER.install()
    {"cost": cost, "krylov": krylov, "ranks": ranks, "steps": steps}[args.part](args)


if __name__ == "__main__":
    main()
