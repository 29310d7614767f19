"""``solver run``: one run of a config into an output directory.

The run owns the output directory (docs/user/outputs.md), the wall-clock split by
phase, the status and summary.json. It builds the model the config asks
for (``build_model``) and hands it to the one time loop (``time.loop``).
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path

from mpi4py import MPI

from . import __version__
from .config import Config, ConfigError, dump_yaml
from .io.log import get_logger, setup_logging
from .io.output import ScalarTable, _agree_io, atomic_write_json, atomic_write_text, prepare_directory
from .time.stop import Interrupted, check_stop, signals_request_stop  # noqa: F401

EXIT_OK, EXIT_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 130
PHASES = ("mesh", "mechanics", "electrochemistry", "coupled", "fracture", "output")


class RunContext:
    """Output directory, timers, scalars and the summary of one run."""

    def __init__(self, cfg: Config, outdir: Path, comm: MPI.Comm = MPI.COMM_WORLD, restart: bool = False):
        self.cfg, self.comm, self.restart = cfg, comm, restart
        self.outdir = prepare_directory(outdir, comm)
        if comm.rank == 0 and not restart:
            (self.outdir / "log.txt").unlink(missing_ok=True)
        self.log = setup_logging(self.outdir / "log.txt", comm)
        self.timers = {p: 0.0 for p in PHASES}
        self.blas = "not checked"  # the BLAS library MUMPS runs on (numerics/blas.py)
        self.t0 = time.perf_counter()
        self.scalars = ScalarTable(self.outdir / "scalars.csv", comm)
        self.dofs: dict[str, int] = {}
        self.status = "running"
        self.steps = 0
        self.time = 0.0
        self.extra: dict = {}
        error = None
        if comm.rank == 0:
            try:
                atomic_write_text(self.outdir / "config.resolved.yaml", dump_yaml(cfg))
            except OSError as exc:
                error = (exc.errno, exc.strerror or str(exc), exc.filename)
        _agree_io(comm, error)  # the same OSError on every rank

    @contextmanager
    def phase(self, name: str):
        """Charge the wall-clock time of the block to phase ``name``; the block
        is also a PETSc log stage of that name (-log_view, benchmarks)."""
        from petsc4py import PETSc

        stage = PETSc.Log.Stage(name)
        start = time.perf_counter()
        stage.push()
        try:
            yield
        finally:
            stage.pop()
            self.timers[name] += time.perf_counter() - start

    def wall(self) -> float:
        return time.perf_counter() - self.t0

    def write_summary(self) -> None:
        import dolfinx
        from petsc4py import PETSc

        petsc_version = ".".join(str(x) for x in PETSc.Sys.getVersion())
        summary = {
            "status": self.status,
            "steps": self.steps,
            "final_time_s": self.time,
            "ranks": self.comm.size,
            "dofs": self.dofs,
            "wall_time_s": self.wall(),
            "wall_split_s": dict(self.timers),
            "versions": {"solver": __version__, "dolfinx": dolfinx.__version__, "petsc": petsc_version,
                         "blas": self.blas},
            "config_hash": self.cfg.config_hash(),
            "physics_hash": self.cfg.physics_hash(),
            "units": {"coordinates": "um (fields.xdmf)", "time": "s", "scalars": "SI, units in column names"},
            **self.extra,
        }
        if self.comm.rank == 0:
            atomic_write_json(self.outdir / "summary.json", summary)


def default_outdir(cfg: Config) -> Path:
    return Path(cfg.output.directory or f"results/{cfg.name}")


def run(cfg: Config, outdir: Path | None = None, restart: bool = False, comm: MPI.Comm = MPI.COMM_WORLD) -> int:
    """Run ``cfg``; returns the exit code of docs/user/running.md#exit-codes."""
    from .numerics.linalg import SolveError

    outdir = Path(outdir or default_outdir(cfg))
    if restart:
        from .io.checkpoint import CHECKPOINT_DIR, restart_refusal

        problems = restart_refusal(cfg, outdir / CHECKPOINT_DIR)  # before anything is built or written
        if problems:
            raise ConfigError(problems)
        from .io.checkpoint_store import CheckpointDamaged, CheckpointStore

        try:  # sizes and sha256 against the manifest, on rank 0, verdict broadcast: no rank reads a damaged file
            CheckpointStore(outdir / "checkpoint", comm).select_for_restart()
        except CheckpointDamaged as exc:
            raise ConfigError([str(exc)]) from None
    import logging

    logging.raiseExceptions = False  # a log line lost to a full disk is no traceback
    try:
        ctx = RunContext(cfg, outdir, comm, restart)
    except OSError as exc:  # a full disk or an I/O error before the first step: nothing to keep but the files
        if comm.rank == 0:
            where = f" ({exc.filename})" if exc.filename else ""
            print(f"error: run not started: I/O error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAILED
    log = get_logger()
    log.info(f"nacrack {__version__}: run '{cfg.name}' on {comm.size} rank(s) -> {ctx.outdir}")
    code = EXIT_OK
    from petsc4py import PETSc  # noqa: F401  PetscInitialize sets its signal handlers first; ours replace them
    from .numerics.memory import allow_mmap

    keep_summary = False
    with signals_request_stop():
        allow_mmap()  # after PetscInitialize: freed LU factors go back to the system (numerics/memory.py)
        _log_blas(ctx, log)
        try:
            _run_problem(ctx)
        except Interrupted as exc:
            ctx.status, code = "interrupted", EXIT_INTERRUPTED
            log.info(f"interrupted by {exc}; state written")
        except SolveError as exc:
            ctx.status, code = "failed", EXIT_FAILED
            ctx.extra["reason"] = f"solver failure: {exc}"
            log.info(f"solver failure: {exc}")
        except ConfigError:  # refused before the run started (e.g. a damaged checkpoint): the summary stays
            keep_summary = True
            raise
        except OSError as exc:  # a full disk or an I/O error at a checkpoint or an output write
            ctx.status, code = "failed", EXIT_FAILED
            ctx.extra["reason"] = f"I/O error: {exc.strerror or exc}" + (f" ({exc.filename})" if exc.filename else "")
            log.info(f"stopped: {ctx.extra['reason']}; the last good checkpoint is kept")
        finally:
            if ctx.status == "running":
                ctx.status = "failed"
                code = EXIT_FAILED
            try:
                if not keep_summary:
                    ctx.write_summary()
            except OSError as exc:  # the previous summary.json stays (atomic write)
                log.info(f"summary.json not written ({exc.strerror or exc}); the previous one is kept")
            comm.barrier()  # every rank returns after rank 0 has written the files
            from .petsc_options import drop_unused_defaults

            drop_unused_defaults(cfg.solver.petsc)  # PETSc's exit report: only options the user gave
    log.info(
        f"status {ctx.status}: {ctx.steps} steps, t = {ctx.time:.4e} s, wall {ctx.wall():.1f} s "
        f"({', '.join(f'{k} {v:.1f} s' for k, v in ctx.timers.items())})"
    )
    return code


def build_model(ctx: RunContext, domain=None):
    """The model the config asks for (a coupling.protocol.Model): conduction
    alone, or the coupled solver of the enabled fields; on ``domain`` (an
    adapted mesh, mesh.adapt) or the domain the config builds."""
    cfg = ctx.cfg
    if cfg.electrochemistry.enabled and cfg.electrochemistry.model == "conduction":
        from .mesh import build_domain
        from .physics.conduction import ConductionProblem

        if domain is None:
            with ctx.phase("mesh"):
                domain = build_domain(cfg, ctx.comm)
        return ConductionProblem.from_config(domain, cfg)
    from .coupling.staggered import CoupledSolver

    return CoupledSolver(ctx, domain=domain)


def _log_blas(ctx: RunContext, log) -> None:
    """Log the BLAS in use (into summary.json too); warn about the reference BLAS."""
    from .numerics.blas import blas_in_use

    name, optimised = blas_in_use()
    ctx.blas = name
    if optimised:
        log.info(f"BLAS: {name}")
    else:
        log.warning(f"BLAS: {name}: direct solves (MUMPS) run ~3.5x slower than with an optimised BLAS; "
                    "install OpenBLAS (Debian: libopenblas0-serial, as docker/packages.txt does)")


def _run_problem(ctx: RunContext) -> None:
    from .time.loop import run_time_loop

    domain = None
    if ctx.restart and ctx.cfg.mesh.adapt.enabled:
        from .io.checkpoint import CHECKPOINT_DIR, read_adapted_domain

        domain = read_adapted_domain(ctx.cfg, ctx.outdir / CHECKPOINT_DIR, ctx.comm)  # None: not adapted yet
    run_time_loop(ctx, build_model(ctx, domain))
