"""Command line (docs/user/running.md):

    python3 -m solver mesh   CONFIG.yaml [-o DIR]
    python3 -m solver check  CONFIG.yaml [--set k=v ...]
    mpirun -n N python3 -m solver run CONFIG.yaml [-o DIR] [--set k=v ...] [--restart]
    python3 -m solver report DIR

Exit codes: 0 finished, 1 bad input (config, paths, permissions, command
line; one line each, no traceback), 2 solver failure, 130 interrupted.
``check`` imports no DOLFINx.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import ConfigError, load_config


class _Parser(argparse.ArgumentParser):
    """argparse with exit code 1 for a bad command line (2 means 'solver failed')."""

    def error(self, message: str):
        if _rank() == 0:
            self.print_usage(sys.stderr)
            print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(1)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="nacrack",
        description="Na dendrites and fracture in ceramic electrolytes (FEniCSx).",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

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
    from .config import PathError

    label = "error" if isinstance(exc, PathError) else "config error"
    if _rank() == 0:
        for line in exc.problems:
            print(f"{label}: {line}", file=sys.stderr)
    return 1


def _error(line: str) -> int:
    if _rank() == 0:
        print(f"error: {line}", file=sys.stderr)
    return 1


def _os_error(exc: OSError) -> str:
    """'PATH: reason' of an OSError, one line."""
    from .config import short

    what = exc.filename if exc.filename is not None else "a file"
    return f"{short(str(what))}: {exc.strerror or exc}"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "report":
            from .io.output import check_readable_dir
            from .report import report

            check_readable_dir(Path(args.directory), "report DIRECTORY")
            try:
                return report(Path(args.directory))
            except OSError as exc:
                return _error(f"report {args.directory}: {_os_error(exc)}")
            except ValueError as exc:  # a damaged summary.json or scalars.csv
                return _error(f"report {args.directory}: a file of the run is damaged ({str(exc)[:200]})")
        cfg = load_config(args.config, args.overrides)
        from .preflight import cross_check

        problems = cross_check(cfg)
        if not problems and cfg.solver.petsc and args.command in ("check", "run"):
            problems = _petsc_problems(cfg)
        if problems:
            raise ConfigError(problems)
        if args.command == "check":
            return _check(cfg)
        from .io.output import check_output_dir
        from .run import default_outdir

        if args.output is not None:
            outdir, what = Path(args.output), f"-o {args.output}"
        elif cfg.output.directory:
            outdir, what = default_outdir(cfg), f"output.directory = {cfg.output.directory}"
        else:
            outdir, what = default_outdir(cfg), f"the output directory {default_outdir(cfg)}"
        check_output_dir(outdir, what, must_exist=getattr(args, "restart", False))
        if args.command == "mesh":
            from .mesh.polycrystal import mesh_command

            return mesh_command(cfg, outdir)
        from .run import run

        return run(cfg, outdir, restart=args.restart)
    except ConfigError as exc:
        return _config_errors(exc)
    except OSError as exc:  # paths and permissions before any run started (run() handles its own)
        return _error(_os_error(exc))
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


def _petsc_problems(cfg) -> list[str]:
    """solver.petsc options that the configured KSP/PC would not use (needs petsc4py)."""
    try:
        from .petsc_options import check_petsc_options
    except ImportError:  # check without PETSc: the run checks again
        return []
    return check_petsc_options(cfg.solver.petsc, cfg.mesh.dim)


def _check(cfg) -> int:
    from .preflight import describe, warnings

    print(f"config '{cfg.name}' is valid")
    for line in describe(cfg):
        print(f"  {line}")
    for line in warnings(cfg):
        print(f"  warning: {line}")
    return 0
