"""``solver run``: one run of a config into an output directory.

The run owns the output directory (INTERFACE.md), the wall-clock split by
phase, the status and summary.json. The physics of each step lives in the
field modules; this file only orders them in time.
"""

from __future__ import annotations

import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from mpi4py import MPI

from . import __version__
from .config import Config, ConfigError, dump_yaml, schedule_value
from .log import Progress, get_logger, setup_logging
from .output import ScalarTable, _agree_io, atomic_write_json, atomic_write_text, prepare_directory

EXIT_OK, EXIT_CONFIG, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 130
PHASES = ("mesh", "mechanics", "electrochemistry", "fracture", "output")


class Interrupted(Exception):
    """SIGINT / SIGTERM received: stop cleanly, write state, exit 130."""


class RunContext:
    """Output directory, timers, scalars and the summary of one run."""

    def __init__(self, cfg: Config, outdir: Path, comm: MPI.Comm = MPI.COMM_WORLD, restart: bool = False):
        self.cfg, self.comm, self.restart = cfg, comm, restart
        self.outdir = prepare_directory(outdir, comm)
        if comm.rank == 0 and not restart:
            (self.outdir / "log.txt").unlink(missing_ok=True)
        self.log = setup_logging(self.outdir / "log.txt", comm)
        self.timers = {p: 0.0 for p in PHASES}
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
        start = time.perf_counter()
        try:
            yield
        finally:
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
            "versions": {"solver": __version__, "dolfinx": dolfinx.__version__, "petsc": petsc_version},
            "config_hash": self.cfg.config_hash(),
            "physics_hash": self.cfg.physics_hash(),
            "units": {"coordinates": "um (fields.xdmf)", "time": "s", "scalars": "SI, units in column names"},
            **self.extra,
        }
        if self.comm.rank == 0:
            atomic_write_json(self.outdir / "summary.json", summary)


_pending_stop: list[str] = []  # names of the signals received and not yet acted on


@contextmanager
def signals_request_stop():
    """Turn SIGTERM (batch scheduler) and SIGINT (Ctrl-C) into a stop request.

    The handler only records the signal; the time loop acts on it at the next
    safe point (``check_stop``), which every rank reaches in the same order, so
    the state written is always that of a completed step and no rank is left
    inside a collective call. A second signal stops at once."""

    def handler(signum, frame):
        name = signal.Signals(signum).name
        if _pending_stop:
            raise Interrupted(f"{name} (second signal)")
        _pending_stop.append(name)

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE)}
    _pending_stop.clear()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, handler)
    # PetscInitialize catches SIGPIPE and calls MPI_Abort. When mpirun dies, Open MPI's
    # error message to the dead launcher raises SIGPIPE inside opal_output, and that
    # abort re-enters opal_output: the ranks hung for good (kill -9 of mpirun, measured).
    # Ignored (Python's own default), a write to a closed pipe fails with EPIPE instead.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _pending_stop.clear()


def check_stop(comm: MPI.Comm) -> None:
    """Raise Interrupted on every rank if any rank has received SIGTERM/SIGINT.

    Collective: call it only where all ranks pass in the same order."""
    if comm.allreduce(1 if _pending_stop else 0, op=MPI.MAX):
        raise Interrupted(_pending_stop[0] if _pending_stop else "a signal on another rank")


def default_outdir(cfg: Config) -> Path:
    return Path(cfg.output.directory or f"results/{cfg.name}")


def run(cfg: Config, outdir: Path | None = None, restart: bool = False, comm: MPI.Comm = MPI.COMM_WORLD) -> int:
    """Run ``cfg``; returns the exit code of INTERFACE.md."""
    from .linalg import SolveError

    outdir = Path(outdir or default_outdir(cfg))
    if restart and not (cfg.electrochemistry.enabled and cfg.electrochemistry.model == "conduction"):
        from .coupled import restart_refusal

        problems = restart_refusal(cfg, outdir / "checkpoint")  # before anything is built or written
        if problems:
            raise ConfigError(problems)
        from .checkpoint_store import CheckpointDamaged, CheckpointStore

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
    keep_summary = False
    with signals_request_stop():
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


def _run_problem(ctx: RunContext) -> None:
    cfg = ctx.cfg
    if cfg.electrochemistry.enabled and cfg.electrochemistry.model == "conduction":
        run_conduction(ctx)
        return
    from .coupled import run_coupled

    run_coupled(ctx)


def run_conduction(ctx: RunContext) -> None:
    """The potential alone, quasi-static, following the voltage schedule."""
    from .conduction import ConductionProblem
    from .domain import build_domain
    from .xdmf import FieldWriter

    cfg, log = ctx.cfg, get_logger()
    el = cfg.materials.electrolyte
    with ctx.phase("mesh"):
        domain = build_domain(cfg, ctx.comm)
    problem = ConductionProblem(domain, el.conductivity_parallel, el.conductivity_perpendicular,
                                cfg.solver.petsc.get("potential"))
    ctx.dofs = {"potential": problem.dofs()}
    log.info(f"mesh: {domain.n_grains} grain(s), potential DOFs {ctx.dofs['potential']}")
    writer = FieldWriter(ctx.outdir / "fields.xdmf", domain.mesh)
    width_m = domain.width * 1e-6
    progress = Progress(cfg.time.t_end, cfg.output.progress_every)
    t, dt, step = 0.0, cfg.time.dt, 0
    charge = 0.0
    try:
        while t < cfg.time.t_end * (1 - 1e-12) and step < cfg.time.max_steps:
            check_stop(ctx.comm)
            dt = min(dt, cfg.time.t_end - t)
            t += dt
            step += 1
            voltage = schedule_value(cfg.loading.electrical.voltage, t)
            with ctx.phase("electrochemistry"):
                its = problem.solve(voltage)
            current = problem.current_per_depth()  # A/m
            charge += current * dt
            with ctx.phase("output"):
                if step % cfg.output.every == 0 or t >= cfg.time.t_end * (1 - 1e-12):
                    writer.write([problem.phi, domain.grain_id, domain.theta], t)
                ctx.scalars.append({
                    "step": step, "time_s": t, "dt_s": dt,
                    "current_density_A_m2": current / width_m, "cell_voltage_V": voltage,
                    "charge_C_m": charge, "stagger_iterations": 1, "newton_iterations": 0,
                    "krylov_iterations": its, "wall_s": ctx.wall(),
                })
            ctx.steps, ctx.time = step, t
            progress.step(step, t, dt, f"I = {current / width_m:.4e} A/m^2  ksp {its}")
            dt = min(dt * cfg.time.growth, cfg.time.dt_max or cfg.time.t_end)
    finally:
        writer.close()
    ctx.status = "completed"
