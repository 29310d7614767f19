"""Time to short circuit against the number of grains and of ranks (issue 21 item 5).

Scales configs/specimen.yaml at its grain size (10 um) and aspect (2 : 1) to
N grains: area N pi (d/2)^2, width sqrt(2 area), height width / 2, the
config's flaws at the same fractions of the width (so 64 grains is
100 x 50 um, 250 grains 198 x 99 um, 1000 grains 396 x 198 um), and runs
each size on each rank count to short circuit (or --max-wall-min) with
`mpirun -n R python3 -m solver run`. Prints per run: grains, ranks, DOFs at
the end (adapted mesh), steps, status, simulated
time, wall seconds, seconds per step, and the wall split (coupled Newton /
staggered electrochemistry fallback). Not a timed test; runs take minutes to
an hour each.

    docker/envrun python3 benchmarks/specimen_sweep.py [--grains 64 250 1000] [--ranks 1 2 4]
        [--config configs/specimen.yaml] [--out build/specimen_sweep] [--max-wall-min 60]
        [--set KEY=VALUE ...]

Rank counts above the machine's cores are oversubscribed (mpirun
--oversubscribe): their wall times say what a larger machine would not.
Measured: docs/studies/specimen.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCHERS = {"mpirun", "mpiexec", "prterun", "orterun"}  # signalled last: they would kill the ranks


def scaled_config(base: dict, grains: int) -> dict:
    """The base config at `grains` grains of its grain size, aspect 2 : 1,
    flaws at the same fractions of the width (lengths in um as given)."""
    from solver.config import load_config

    cfg = load_config(raw=base)
    d = cfg.mesh.grain_size
    old_w = cfg.mesh.width
    width = math.sqrt(2.0 * grains * math.pi * d * d / 4.0)
    raw = json.loads(json.dumps(base))
    raw["name"] = f"{base.get('name', 'specimen')}_{grains}"
    raw["mesh"]["width"] = f"{width * 1e6:.6g} um"
    raw["mesh"]["height"] = f"{width * 0.5e6:.6g} um"
    for flaw, parsed in zip(raw["mesh"].get("flaws", []), cfg.mesh.flaws):
        x, y = parsed.center
        flaw["center"] = [f"{x / old_w * width * 1e6:.6g} um", f"{y * 1e6:.6g} um"]
    return raw


def stop_ranks(proc: subprocess.Popen, path: str, grace_s: float = 300.0) -> None:
    """SIGTERM to the ranks themselves, not to mpirun (which would kill them
    before they finish the step: docs/known-limits.md): they stop cleanly,
    with status `interrupted`, a checkpoint and summary.json. mpirun after
    grace_s if they have not."""
    ranks = subprocess.run(["pgrep", "-f", f"solver run {path}"], stdout=subprocess.PIPE, text=True).stdout.split()
    for pid in (int(p) for p in ranks):
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        if pid != proc.pid and Path(argv0).name not in LAUNCHERS:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait()


def one(raw: dict, ranks: int, out: Path, sets: list[str], max_wall_min: float, cores: int) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    cmd = ["mpirun", "-n", str(ranks)] + (["--oversubscribe"] if ranks > cores else []) + [
        sys.executable, "-m", "solver", "run", str(path), "-o", str(out / "run")]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    with open(out / "run.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            rc = proc.wait(timeout=max_wall_min * 60.0)
            note = "" if rc == 0 else f"exit {rc}"
        except subprocess.TimeoutExpired:
            stop_ranks(proc, str(path))
            note = f"stopped after {max_wall_min:g} min"
    wall = time.perf_counter() - t0
    summ_path = out / "run" / "summary.json"
    summ = json.loads(summ_path.read_text()) if summ_path.exists() else {}
    return {"ranks": ranks, "status": summ.get("status", "?"), "note": note, "steps": summ.get("steps", 0),
            "t": summ.get("final_time_s", float("nan")), "wall": wall, "dofs_end": sum(summ.get("dofs", {}).values()),
            "split": summ.get("wall_split_s", {})}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "specimen.yaml"))
    ap.add_argument("--grains", type=int, nargs="+", default=[64, 250, 1000])
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--out", default=str(ROOT / "build" / "specimen_sweep"))
    ap.add_argument("--max-wall-min", type=float, default=60.0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    base = yaml.safe_load(Path(args.config).read_text())
    cores = os.cpu_count() or 1
    print(f"{'grains':>6} {'W x H [um]':>12} {'ranks':>5} {'DOFs end':>9} {'steps':>5} {'status':>14} "
          f"{'t [s]':>8} {'wall [s]':>8} {'s/step':>6} {'coupled':>7} {'fallback':>8}  note", flush=True)
    for n in args.grains:
        raw = scaled_config(base, n)
        size = f"{float(raw['mesh']['width'].split()[0]):.0f} x {float(raw['mesh']['height'].split()[0]):.0f}"
        for r in args.ranks:
            res = one(raw, r, Path(args.out) / f"g{n}_np{r}", args.set, args.max_wall_min, cores)
            sp = res["split"]
            print(f"{n:>6} {size:>12} {r:>5} {res['dofs_end']:>9} {res['steps']:>5} {res['status']:>14} "
                  f"{res['t']:>8.4g} {res['wall']:>8.0f} {res['wall'] / max(res['steps'], 1):>6.2f} "
                  f"{sp.get('coupled', 0):>7.0f} {sp.get('electrochemistry', 0):>8.0f}  {res['note']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
