"""The one time loop: every model (the coupled solver, conduction alone)
advances through it.

Each step: a stop request is honoured (``check_stop``); the controller
proposes h; the model saves its state and solves the step ending at t + h.
A failed solve, or a step the model reports problems with (too large a
change, no convergence), is restored and retried with a cut dt; below
dt_min the run stops ``failed`` with the last good state checkpointed. An
accepted step is committed, its scalars row written, fields and checkpoints
written when due. The run ends ``completed`` at t_end, ``short_circuit``
when the deposit bridges the electrodes, or ``max_steps`` at time.max_steps
before t_end. With mesh.adapt the model is replaced, after an accepted step,
by one on an adapted mesh (``mesh.adapt.MeshAdapter``): its fields go to a new
fields_NNNN.xdmf and a checkpoint is written at once. With
mesh.adapt.max_redo a step whose crack ran out of the refined band is redone
on a mesh refined towards its trial state (``MeshAdapter.solve_step``).
"""

from __future__ import annotations

import time
from contextlib import nullcontext

from mpi4py import MPI

from ..config import Config
from ..io import checkpoint
from ..io.log import Progress, get_logger
from ..io.xdmf import FieldWriter
from ..numerics.linalg import SolveError
from ..numerics.memory import release_memory, resident_mib
from .stepping import StepSizeController, schedule_breakpoints
from .stop import Interrupted, check_stop


def run_time_loop(ctx, model) -> None:
    """Advance ``model`` (a ``coupling.protocol.Model``) from 0 (or the
    checkpoint) to cfg.time.t_end, writing into ``ctx`` (a RunContext)."""
    cfg: Config = ctx.cfg
    log = get_logger()
    ctx.dofs = model.dofs_by_field()
    log.info(f"mesh: {model.domain.n_grains} grain(s); DOFs {ctx.dofs}")
    ckdir = ctx.outdir / checkpoint.CHECKPOINT_DIR
    t, step, dt = 0.0, 0, cfg.time.dt
    if ctx.restart:
        state = checkpoint.read_checkpoint(model, ckdir, cfg)
        t, step, dt = state["time_s"], state["step"], state["dt_s"]
        ctx.scalars.load_existing(upto_step=step)
        log.info(f"restart from step {step}, t = {t:.4e} s ({state['ranks']} -> {ctx.comm.size} ranks)")
    control = StepSizeController(cfg.time, schedule_breakpoints(cfg), dt)
    adapter = None
    if cfg.mesh.adapt.enabled:  # mesh.adapt: the model is rebuilt on a new mesh every mesh.adapt.every steps
        from ..mesh.adapt import MeshAdapter
        from ..run import build_model

        with ctx.phase("mesh"):
            adapter = MeshAdapter(ctx, model, lambda domain: build_model(ctx, domain))
            if not ctx.restart:
                model = adapter.initial(model)
                ctx.dofs = model.dofs_by_field()
        ctx.extra["adapt"] = adapter.records
    writer = FieldWriter(_fields_path(ctx.outdir, model), model.domain.mesh, restart_time=t if ctx.restart else None)
    written_t = t  # the time of the last fields written (a restart's t is in the file already)
    if not ctx.restart:
        with ctx.phase("output"):
            writer.write(model.output_functions(), 0.0)
    progress = Progress(cfg.time.t_end, cfg.output.progress_every)
    ctx.steps, ctx.time = step, t
    last_ck, last_ck_wall = step, ctx.wall()
    try:
        while not control.finished(t) and step < cfg.time.max_steps:
            check_stop(ctx.comm)  # a SIGTERM/SIGINT stops here, after a completed step
            h = control.step(t)
            model.save_state()
            t_wall = time.perf_counter()
            reason, info = "another rank failed", {}
            try:
                with ctx.phase(model.solve_phase) if model.solve_phase else nullcontext():
                    if adapter is not None and cfg.mesh.adapt.max_redo:
                        # a step whose crack escapes the refined band is redone on a new mesh
                        new, info = adapter.solve_step(model, t + h, h, step)
                        info = {**info, "redo": adapter.last_redo}  # solves redone on a refined mesh (scalars.csv)
                        if new is not model:  # the adapter retired the PETSc objects of every model it replaced
                            model = new
                            writer = _on_new_mesh(ctx, writer, model)
                        del new
                    else:
                        info = model.solve(t + h, h)
                ok = 1
            except SolveError as exc:
                ok, reason = 0, str(exc)
            except Interrupted:
                model.restore_state()  # stop at the last completed step
                raise
            ok = ctx.comm.allreduce(ok, op=MPI.MIN)  # failure on one rank is failure on all
            problems = info.pop("problems", [])
            easy = info.pop("easy", True)
            failed = not ok  # the solve failed (not a max_dxi / max_dd rejection of a solved step)
            if ok and problems:
                if control.can_cut(h):
                    ok, reason = 0, "; ".join(problems)
                else:
                    # a cut cannot help (e.g. unstable crack growth at fixed load): accept, say so
                    log.info(f"step {step + 1} accepted at the smallest dt: {'; '.join(problems)}")
            if not ok:
                model.restore_state()
                above_min = control.reject(h, bound=failed, change=info.get("xi_change"))
                log.info(f"step {step + 1} rejected ({reason}); dt -> {control.dt:.3e} s")
                if not above_min:
                    raise SolveError(f"dt = {control.dt:.3e} s below dt_min = {cfg.time.dt_min:.3e} s at t = {t:.4e} s")
                continue
            model.commit()
            t += h
            step += 1
            ctx.steps, ctx.time = step, t
            row = {"step": step, "time_s": t, "dt_s": h, **model.scalars(t), **info,
                   "wall_s": ctx.wall(), "step_wall_s": time.perf_counter() - t_wall,
                   "memory_max_MiB": ctx.comm.allreduce(resident_mib(), op=MPI.MAX)}
            with ctx.phase("output"):
                ctx.scalars.append(row)
                if step % cfg.output.every == 0:
                    writer.write(model.output_functions(), t)
                    written_t = t
                if checkpoint.checkpoint_due(step, ctx.wall() - last_ck_wall, cfg.output, ctx.comm):
                    checkpoint.write_checkpoint(model, ckdir, cfg, step, t, control.dt, {})
                    writer.merge()
                    last_ck, last_ck_wall = step, ctx.wall()
            progress.step(step, t, h, progress_parts(row))
            shorted, where = model.short_circuit()
            if shorted:
                ctx.status = "short_circuit"
                ctx.extra["short_circuit"] = {"time_s": t, "location_m": where}
                log.info(f"short circuit at t = {t:.4e} s, location {where}")
                break
            control.accept(easy, h, change=info.get("xi_change"))
            if adapter is not None and not control.finished(t) and step < cfg.time.max_steps \
                    and adapter.due(step, model):
                with ctx.phase("mesh"):
                    new = adapter.adapt(model, step)  # AdaptError: stops with the old model checkpointed
                if new is not model:  # adapt retired the old model's PETSc objects
                    model = new
                    with ctx.phase("output"):
                        writer = _on_new_mesh(ctx, writer, model)
                        writer.write(model.output_functions(), t)
                        written_t = t
                        checkpoint.write_checkpoint(model, ckdir, cfg, step, t, control.dt, {})
                        last_ck, last_ck_wall = step, ctx.wall()
        if ctx.status == "running":
            if control.finished(t):
                ctx.status = "completed"
            else:
                ctx.status = "max_steps"
                log.info(f"stopped at time.max_steps = {cfg.time.max_steps} at t = {t:.4e} s, before "
                         f"time.t_end = {cfg.time.t_end:.4e} s (status max_steps)")
    finally:
        # every stop writes the last good state (the state was restored on failure)
        with ctx.phase("output"):
            if step != last_ck or not (ckdir / checkpoint.CHECKPOINT_STATE).exists():
                try:
                    checkpoint.write_checkpoint(model, ckdir, cfg, step, t, control.dt, {})
                except Exception as exc:  # never hide the original error
                    log.info(f"could not write the final checkpoint: {exc}")
            # the last state, unless written already (by the periodic output, or on the new mesh of a
            # remesh at this step: writing the same time twice into one file fails in HDF5)
            if t != written_t:
                try:
                    writer.write(model.output_functions(), t)
                except Exception as exc:  # never hide the original error
                    log.info(f"could not write the last fields: {exc}")
            writer.close()


def _on_new_mesh(ctx, writer, model) -> FieldWriter:
    """After ``model`` replaced the model of an older mesh (the caller holds
    no reference to the old one any more): its DOFs, a field file of its own
    (one fields_NNNN.xdmf per mesh) and the old model's PETSc matrices and LU
    factors freed now. Returns the new writer."""
    ctx.dofs = model.dofs_by_field()
    writer.close()
    writer = FieldWriter(_fields_path(ctx.outdir, model), model.domain.mesh)
    release_memory(ctx.comm)
    return writer


def _fields_path(outdir, model):
    """fields.xdmf on the config's mesh; fields_NNNN.xdmf on the NNNN-th adapted mesh (mesh.adapt)."""
    k = int(model.domain.info.get("remesh", 0)) if isinstance(model.domain.info, dict) else 0
    return outdir / ("fields.xdmf" if k == 0 else f"fields_{k:04d}.xdmf")


PROGRESS_FIELDS = (("current_density_A_m2", "i {:.3e} A/m^2"), ("dendrite_tip_m", "tip {:.3e} m"),
                   ("crack_length_m", "crack {:.3e} m"), ("stagger_iterations", "stag {}"),
                   ("fracture_iterations", "frac {}"), ("newton_iterations", "newton {}"),
                   ("krylov_iterations", "ksp {}"))


def progress_parts(row: dict) -> list[str]:
    """The per-step quantities of the progress line, most important first."""
    return [fmt.format(row[key]) for key, fmt in PROGRESS_FIELDS if key in row and row[key] == row[key]]
