"""Command line (docs/user/running.md):

    python3 -m solver mesh   CONFIG.yaml [-o DIR]
    python3 -m solver check  CONFIG.yaml [--set k=v ...]
    mpirun -n N python3 -m solver run CONFIG.yaml [-o DIR] [--set k=v ...] [--restart]
    python3 -m solver report DIR

Exit codes: 0 finished, 1 bad input, 2 solver failure, 130 interrupted.
``check`` imports no DOLFINx.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import ConfigError, load_config


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="nacrack",
        description="Na dendrites and fracture in ceramic electrolytes (FEniCSx).",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, outdir=True):
        sp.add_argument("config", help="YAML config file")
        sp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value by its dotted key, e.g. --set mesh.h='0.5 um'")
        if outdir:
            sp.add_argument("-o", "--output", default=None, help="output directory (default results/<name>)")

    common(sub.add_parser("mesh", help="generate the mesh (gmsh on rank 0): mesh.msh, mesh.json, XDMF, PNG"))
    common(sub.add_parser("check", help="validate a config (fast, no FEniCSx)"), outdir=False)
    r = sub.add_parser("run", help="run a config (use under mpirun)")
    common(r)
    r.add_argument("--restart", action="store_true", help="continue from DIR/checkpoint")
    rep = sub.add_parser("report", help="figures and a text summary of a finished run")
    rep.add_argument("directory", help="output directory of a run")
    return p


def _rank() -> int:
    # Avoid importing mpi4py for 'check': use the launcher's environment.
    import os

    for var in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def _config_errors(exc: ConfigError) -> int:
    if _rank() == 0:
        for line in exc.problems:
            print(f"config error: {line}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "report":
            from .report import report

            return report(Path(args.directory))
        cfg = load_config(args.config, args.overrides)
        from .preflight import cross_check

        problems = cross_check(cfg)
        if problems:
            raise ConfigError(problems)
        if args.command == "check":
            return _check(cfg)
        if args.command == "mesh":
            from .mesh.polycrystal import mesh_command

            return mesh_command(cfg, Path(args.output) if args.output else None)
        from .run import run

        return run(cfg, Path(args.output) if args.output else None, restart=args.restart)
    except ConfigError as exc:
        return _config_errors(exc)
    except FileNotFoundError as exc:
        if _rank() == 0:
            print(f"error: {exc}", file=sys.stderr)
        return 1


def _check(cfg) -> int:
    from .preflight import describe, warnings

    print(f"config '{cfg.name}' is valid")
    for line in describe(cfg):
        print(f"  {line}")
    for line in warnings(cfg):
        print(f"  warning: {line}")
    return 0
