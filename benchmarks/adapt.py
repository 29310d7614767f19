"""DOFs and cost per step of the adaptive mesh vs the uniform mesh of the same h_min.

Runs a config (default configs/macro_fractal.yaml) for a fixed number of
steps twice:

  uniform   the config as it is (mesh.h, mesh.h_fine): h_min = mesh.h
  adaptive  the base mesh 2^levels times coarser (mesh.h, mesh.h_fine x 2^levels;
            a structured rectangle: cells / 2^levels), mesh.adapt on with
            `levels` levels, so that the refined band has the uniform mesh's h

and prints for each: DOFs (at the end and the largest during the run), steps,
simulated time, wall seconds, seconds per step (whole step, and the solve
phases alone), the remeshes and their cost, and the last row's metal area,
current density and dendrite tip (the results the two meshes must share), then
the DOF ratio adaptive / uniform (issue 21's target: <= 20%).

    docker/envrun mpirun -n 2 python3 benchmarks/adapt.py [--config ...] [--steps 10]
        [--levels 1] [--every 5] [--margin '4 um'] [--only adaptive|uniform] [--set 'mesh.h=0.5 um']

Measured (1 rank, shared 2-core machine, 10 steps of macro_fractal): see
docs/user/adaptivity.md#cost.
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
SOLVE_PHASES = ("mechanics", "electrochemistry", "coupled", "fracture")
RESULTS = ("metal_area_m2", "current_density_A_m2", "dendrite_tip_m", "cell_voltage_V")


def _overrides(path: Path, args, adaptive: bool) -> list[str]:
    common = [*args.set, f"time.max_steps={args.steps}", "output.every=100000", "output.checkpoint_every=100000",
              "output.checkpoint_wall_time=0"]
    if not adaptive:
        return common + ["mesh.adapt.enabled=false"]
    cfg = load_config(path, common)
    f = 2 ** args.levels
    m = cfg.mesh
    out = common + ["mesh.adapt.enabled=true", f"mesh.adapt.levels={args.levels}", f"mesh.adapt.every={args.every}",
                    f"mesh.adapt.margin={args.margin}"]
    if m.kind == "rectangle" and m.structured:
        return out + [f"mesh.structured={max(2, m.structured // f)}"]
    out.append(f"mesh.h={m.h * f!r}")
    if m.h_fine is not None:
        out.append(f"mesh.h_fine={m.h_fine * f!r}")
    return out


def _one(path: Path, args, adaptive: bool, outdir: Path, comm) -> dict:
    cfg = load_config(path, _overrides(path, args, adaptive))
    if comm.rank == 0 and outdir.exists():
        shutil.rmtree(outdir)
    comm.barrier()
    code = run(cfg, outdir, comm=comm)
    s = json.loads((outdir / "summary.json").read_text())
    with open(outdir / "scalars.csv") as fh:
        rows = list(csv.DictReader(fh))
    recs = s.get("adapt") or []
    steps = max(1, s["steps"])
    solve = sum(s["wall_split_s"].get(k, 0.0) for k in SOLVE_PHASES)
    return {"mode": "adaptive" if adaptive else "uniform", "code": code, "status": s["status"],
            "dofs": sum(s["dofs"].values()), "dofs_max": max([sum(s["dofs"].values())] + [r["dofs"] for r in recs]),
            "steps": s["steps"], "time_s": s["final_time_s"], "wall_s": s["wall_time_s"],
            "s_per_step": s["wall_time_s"] / steps, "solve_s_per_step": solve / steps,
            "mesh_s": s["wall_split_s"].get("mesh", 0.0), "remeshes": len(recs),
            "metal_err_raw_max": max([abs(r.get("metal_rel_error_raw", 0.0)) for r in recs] or [0.0]),
            "last": {k: float(rows[-1][k]) for k in RESULTS if rows and k in rows[-1]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "macro_fractal.yaml")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--levels", type=int, default=1)
    ap.add_argument("--every", type=int, default=5)
    ap.add_argument("--margin", default="4 um")
    ap.add_argument("--only", choices=("adaptive", "uniform"))
    ap.add_argument("--set", action="append", default=[], help="a config override for both runs, e.g. 'mesh.h=0.5 um'")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "bench-adapt")
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    res = []
    for adaptive in (True, False):
        if args.only and args.only != ("adaptive" if adaptive else "uniform"):
            continue
        res.append(_one(args.config, args, adaptive, args.out / ("adaptive" if adaptive else "uniform"), comm))
    if comm.rank != 0:
        return
    print(f"\n{args.config.name}: {args.steps} steps, levels {args.levels}, every {args.every}, margin {args.margin}, "
          f"{comm.size} rank(s)")
    print(f"{'mode':9} {'DOFs':>8} {'max DOFs':>9} {'steps':>5} {'t [s]':>9} {'wall [s]':>9} {'s/step':>7} "
          f"{'solve s/step':>12} {'mesh [s]':>8} {'remeshes':>8} {'metal err':>9}")
    for r in res:
        print(f"{r['mode']:9} {r['dofs']:8d} {r['dofs_max']:9d} {r['steps']:5d} {r['time_s']:9.3g} {r['wall_s']:9.1f} "
              f"{r['s_per_step']:7.2f} {r['solve_s_per_step']:12.2f} {r['mesh_s']:8.1f} {r['remeshes']:8d} "
              f"{r['metal_err_raw_max']:9.1e}  ({r['status']})")
    for r in res:
        print(f"  {r['mode']:9} last row: " + ", ".join(f"{k} {v:.5g}" for k, v in r["last"].items()))
    if len(res) == 2:
        a, u = res
        print(f"DOFs adaptive / uniform: {a['dofs_max'] / u['dofs']:.1%} (largest during the run), "
              f"s/step ratio {a['s_per_step'] / u['s_per_step']:.2f}")
        for k in a["last"]:
            if k in u["last"] and u["last"][k]:
                print(f"  {k}: relative difference {a['last'][k] / u['last'][k] - 1:+.2e}")
    (args.out / "results.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
