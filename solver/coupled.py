"""The staggered electro-chemo-mechanical solver (MODEL.md section 5).

Each time step t_n -> t_n + dt, iterate until converged:

    (M) mechanics         u   with xi, d frozen    -> pressure p for (E)
    (E) electrochemistry  (xi, c~, phi) by Newton with u, d frozen
    (F) fracture          history H, then d

With ``solver.stagger.fracture_iterations`` = K > 1, stage (F) alternates
mechanics and fracture up to K times at the frozen deposit until
max|d_j - d_j-1| <= tol_d: brittle fracture is rate-independent, so a crack
that turns unstable must jump within the step; the plain scheme would
instead advance it by one alternating-minimisation iteration per time step
(a crack that "creeps" at a speed set by dt). The outer loop stops
when max|d_k - d_k-1| <= tol_d, max|xi_k - xi_k-1| <= tol_xi and
the relative mechanics residual with the new d is <= tol_u (at most N_stag
iterations). Any subset of the three fields may be enabled (a standalone
mechanics/fracture run, an electrochemistry-only run). The pressure handed
from (M) to (E) may be relaxed between iterations (``solver.stagger.
relaxation``, fixed or Aitken; ``PressureRelaxation``): the stress-kinetics
feedback multiplies an error in p by g ~ -dt Omega^2 K eps_v i0 / (F R T
delta) per pass, and the plain iteration oscillates for g < -1.

Adaptive dt: grow after easy steps; after a failed solve or a too-large
change (max|dxi| > time.max_dxi, max|dd| > time.max_dd) restore the state of
t_n and cut dt; below dt_min stop with status ``failed`` and the last good
state checkpointed. Checkpoints (adios4dolfinx, on the input mesh ordering,
so a restart may use another number of ranks) are written every
``output.checkpoint_every`` steps, after ``output.checkpoint_wall_time`` of
wall-clock time, and at every stop. SIGTERM/SIGINT stop at the next staggered
iteration (``run.check_stop``), abandoning the step under way.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from dolfinx import fem

from . import scales
from .config import Config, ConfigError
from .linalg import SolveError
from .log import Progress, get_logger
from .run import Interrupted, check_stop

CHECKPOINT_STATE = "state.json"


def global_max_abs(a: np.ndarray, comm: MPI.Comm) -> float:
    local = float(np.max(np.abs(a))) if a.size else 0.0
    return comm.allreduce(local, op=MPI.MAX)


class PressureRelaxation:
    """Relaxation of the coupling pressure between staggered iterations of one
    step: p_k = p_(k-1) + omega_k r_k, r_k = p~_k - p_(k-1), with p~_k the
    pressure of the mechanics just solved and p_(k-1) the one (E) used last.
    ``fixed``: omega_k = omega. ``aitken`` (Irons-Tuck / Aitken delta^2, the
    secant method on r): omega_k = -omega_(k-1) r_(k-1).(r_k - r_(k-1)) /
    |r_k - r_(k-1)|^2, clipped to [0.01, 1]. On a linear feedback p~ = p* +
    g (p - p*) the plain iteration diverges for g < -1, omega = 1 / (1 - g)
    lands on p* at once, and Aitken lands on p* at its second update for any
    g <= 0 (the stress slows plating: g < 0)."""

    OMEGA_MIN = 0.01

    def __init__(self, p: fem.Function, omega: float, method: str, comm: MPI.Comm):
        self.p, self.omega, self.method, self.comm = p, float(omega), method, comm
        im = p.function_space.dofmap.index_map
        self.n_owned = im.size_local * p.function_space.dofmap.index_map_bs
        self.prev = None  # p_(k-1)
        self.r_prev = None  # r_(k-1)

    def _dot(self, a: np.ndarray, b: np.ndarray) -> float:
        n = self.n_owned
        return self.comm.allreduce(float(np.dot(a[:n], b[:n])), op=MPI.SUM)

    def apply(self) -> float:
        """Replace p (holding p~_k) by the relaxed p_k; returns omega_k (1 at k = 1)."""
        a = self.p.x.array
        if self.prev is None or (self.method == "fixed" and self.omega == 1.0):
            self.prev = a.copy()
            return 1.0
        r = a - self.prev
        if self.method == "aitken" and self.r_prev is not None:
            dr = r - self.r_prev
            den = self._dot(dr, dr)
            if den > 0.0:
                self.omega = min(1.0, max(self.OMEGA_MIN, -self.omega * self._dot(self.r_prev, dr) / den))
        a[:] = self.prev + self.omega * r
        self.p.x.scatter_forward()
        self.r_prev, self.prev = r, a.copy()
        return self.omega


class CoupledSolver:
    """Owns the domain, the field problems and the shared coupling fields.

    Shared fields, created here and handed to the problems:
      xi (P1)  Na-metal phase, copied from electrochemistry after (E)
      d        fracture phase field (P1; DG0 for 'damaged_domain'), copied after (F)
      p (DG0)  coupling pressure [MPa] (electrochemistry.coupling_pressure: -tr(sigma)/3
               or the interface traction -n.sigma.n), interpolated from mechanics after (M)
    """

    def __init__(self, ctx):
        from .domain import build_domain

        self.ctx, self.cfg, self.comm = ctx, ctx.cfg, ctx.comm
        cfg = self.cfg
        self.log = get_logger()
        with ctx.phase("mesh"):
            self.domain = build_domain(cfg, self.comm)
        msh = self.domain.mesh
        V1 = fem.functionspace(msh, ("Lagrange", 1))
        self.xi = fem.Function(V1, name="metal")
        d_space = fem.functionspace(msh, ("DG", 0)) if cfg.fracture.model == "damaged_domain" else V1
        self.d = fem.Function(d_space, name="damage")
        # cell-wise (DG0) pressure: the stress of P1 displacements jumps between
        # cells, and a vertex value would depend on the cell visited last (on
        # the partition)
        Q0 = fem.functionspace(msh, ("DG", 0))
        self.p = fem.Function(Q0, name="hydrostatic_pressure_MPa")
        self.ec = self.mech = self.frac = None
        if cfg.electrochemistry.enabled:
            from .electrochemistry import ElectrochemistryProblem

            self.ec = ElectrochemistryProblem(self.domain, cfg, pressure=self.p, d=self.d)
            self._copy_xi()
        if cfg.mechanics.enabled:
            from .mechanics import MechanicsProblem

            self.mech = MechanicsProblem(self.domain, cfg, xi=self.xi, d=self.d)
            ec = cfg.electrochemistry
            p_ufl = (self.mech.interface_pressure(ec.interface_width / scales.LENGTH)
                     if ec.coupling_pressure == "normal" else self.mech.pressure())
            self._p_expr = fem.Expression(p_ufl, Q0.element.interpolation_points())
        if cfg.fracture.enabled:
            if self.mech is None:
                raise ConfigError(["fracture.enabled = true: needs mechanics.enabled = true (stress drives fracture)"])
            from .fracture import FractureProblem

            self.frac = FractureProblem(self.domain, cfg, self.mech)
            self._copy_d()
        if not (self.ec or self.mech):
            raise ConfigError(["electrochemistry.enabled and mechanics.enabled are both false: nothing to solve"])
        self.charge = 0.0
        self.fracture_subiterations = 0

    # -- coupling copies --------------------------------------------------
    def _copy_xi(self):
        self.xi.interpolate(self.ec.xi_function())
        self.xi.x.scatter_forward()

    def _copy_d(self):
        if self.frac.d is not self.d:
            self.d.interpolate(self.frac.d)
            self.d.x.scatter_forward()

    def _update_pressure(self):
        self.p.interpolate(self._p_expr)
        self.p.x.scatter_forward()

    def dofs(self) -> dict:
        out = {}
        for name, prob in (("electrochemistry", self.ec), ("mechanics", self.mech), ("fracture", self.frac)):
            if prob is not None:
                out[name] = int(prob.dofs())
        return out

    def problems(self):
        return [p for p in (self.ec, self.mech, self.frac) if p is not None]

    # -- state for cut-back --------------------------------------------------
    def save_state(self):
        for p in self.problems():
            p.save_state()
        self._saved = (self.xi.x.array.copy(), self.d.x.array.copy(), self.p.x.array.copy())

    def restore_state(self):
        for p in self.problems():
            p.restore_state()
        for f, a in zip((self.xi, self.d, self.p), self._saved):
            f.x.array[:] = a
            f.x.scatter_forward()

    # -- one step ----------------------------------------------------------
    def step(self, t: float, dt: float) -> dict:
        """Staggered iterations for the step ending at time t [s]."""
        cfg, ctx = self.cfg, self.ctx
        st = cfg.solver.stagger
        n_fields = len(self.problems())
        newton = krylov = 0
        self.fracture_subiterations = 0
        relax = PressureRelaxation(self.p, st.relaxation, st.relaxation_method, self.comm)
        xi0, d0 = self.xi.x.array.copy(), self.d.x.array.copy()
        converged, k = False, 0
        for k in range(1, st.max_iterations + 1):
            if k > 1:
                check_stop(self.comm)  # a stop request abandons the step (restored by the caller)
            xi_prev, d_prev = self.xi.x.array.copy(), self.d.x.array.copy()
            if self.mech is not None:
                with ctx.phase("mechanics"):
                    krylov += self.mech.solve(t)
                    self._update_pressure()
                    relax.apply()
            if self.ec is not None:
                with ctx.phase("electrochemistry"):
                    n_its, k_its = self.ec.solve(t - dt, dt)  # from the committed state at t - dt
                    newton += n_its
                    krylov += k_its
                    self._copy_xi()
            if self.frac is not None:
                krylov += self._fracture_stage(t)
            if n_fields == 1:
                converged = True
                break
            dxi = global_max_abs(self.xi.x.array - xi_prev, self.comm)
            dd = global_max_abs(self.d.x.array - d_prev, self.comm)
            res_u = 0.0
            if self.mech is not None and (self.frac is not None or self.ec is not None):
                with ctx.phase("mechanics"):
                    res_u = self.mech.residual_norm()
            if dxi <= st.tol_xi and dd <= st.tol_d and res_u <= st.tol_u:
                converged = True
                break
        change_xi = global_max_abs(self.xi.x.array - xi0, self.comm)
        change_d = global_max_abs(self.d.x.array - d0, self.comm)
        problems = []
        if not converged and st.on_max_iterations == "accept":
            self.log.info(f"stagger not converged in {st.max_iterations} iterations (dxi {dxi:.2e}, dd {dd:.2e}, "
                          f"mechanics residual {res_u:.2e}); step accepted (on_max_iterations: accept)")
        elif not converged:
            problems.append(f"staggered iteration not converged in {st.max_iterations} iterations "
                            f"(dxi {dxi:.2e}, dd {dd:.2e}, mechanics residual {res_u:.2e})")
        if change_xi > cfg.time.max_dxi or change_d > cfg.time.max_dd:
            problems.append(f"max|dxi| = {change_xi:.3f} (limit {cfg.time.max_dxi}), "
                            f"max|dd| = {change_d:.3f} (limit {cfg.time.max_dd})")
        info = {"stagger_iterations": k, "newton_iterations": newton, "krylov_iterations": krylov,
                "problems": problems, "converged": converged}
        if self.frac is not None:
            info["fracture_iterations"] = self.fracture_subiterations
        return info

    def _fracture_stage(self, t: float) -> int:
        """(F): update H and solve d; with stagger.fracture_iterations > 1 alternate
        mechanics and fracture at the frozen deposit until max|d_j - d_j-1| <= tol_d.

        A crack that becomes unstable grows at fixed load (rate-independent
        fracture); the sub-iterations let it jump within the step, where the
        plain scheme would advance it by one alternate-minimisation iteration per
        time step. Returns the Krylov iterations spent."""
        st, ctx = self.cfg.solver.stagger, self.ctx
        krylov = 0
        for j in range(st.fracture_iterations):
            if j > 0:
                check_stop(self.comm)
                with ctx.phase("mechanics"):
                    krylov += self.mech.solve(t)
            d_prev = self.d.x.array.copy()
            with ctx.phase("fracture"):
                self.frac.update_history()
                krylov += self.frac.solve()
                self._copy_d()
            if st.fracture_iterations > 1 and global_max_abs(self.d.x.array - d_prev, self.comm) <= st.tol_d:
                break
        self.fracture_subiterations += j + 1
        if j > 0:
            with ctx.phase("mechanics"):
                self._update_pressure()
        return krylov

    def commit(self):
        """Accept the step: the problems move their 'old' state forward."""
        for p in self.problems():
            if hasattr(p, "commit"):
                p.commit()

    # -- per-step quantities ------------------------------------------------
    def scalars(self, t: float) -> dict:
        row = {}
        if self.ec is not None:
            row.update(self.ec.scalars(t))
        if self.mech is not None:
            row["elastic_energy_J_m"] = self.mech.elastic_energy()
            if self.ec is None:  # standalone mechanics: the load on the loaded boundary
                row["reaction_force_y_N_m"] = float(self.mech.reaction_force(self.cfg.loading.mechanical.boundary)[1])
        if self.frac is not None:
            row["crack_length_m"] = self.frac.crack_length()
            row["crack_tip_m"] = self.frac.crack_tip()
            row["fracture_energy_J_m"] = self.frac.fracture_energy()
        return row

    def output_functions(self) -> list:
        funcs = []
        if self.ec is not None:
            funcs += list(self.ec.output_functions())
        if self.mech is not None:
            self.mech.update_derived()
            funcs.append(self.mech.u_output())
            funcs += list(self.mech.derived_functions())
        if self.frac is not None:
            funcs.append(self.d)
        funcs += [self.domain.grain_id, self.domain.theta]
        return funcs

    def short_circuit(self):
        if self.ec is None:
            return False, None
        return self.ec.is_short_circuit(self.cfg.time.short_circuit_distance)

    # -- checkpoints ----------------------------------------------------------
    def checkpoint_functions(self) -> dict:
        funcs = {"xi_shared": self.xi, "d_shared": self.d, "p_shared": self.p}
        defaults = {"mech": lambda m: {"u": m.u}, "frac": lambda f: {"H": f.H}}
        for name, prob in (("ec", self.ec), ("mech", self.mech), ("frac", self.frac)):
            if prob is None:
                continue
            own = prob.checkpoint_functions() if hasattr(prob, "checkpoint_functions") else defaults[name](prob)
            for key, f in own.items():
                funcs[f"{name}_{key}"] = f
        return funcs

    def write_checkpoint(self, directory: Path, step: int, t: float, dt: float, extra: dict):
        """adios4dolfinx files in input-mesh ordering, in a new directory made
        current by checkpoint_store (manifest, atomic state.json, previous kept)."""
        import adios4dolfinx

        from .checkpoint_store import CheckpointStore

        store = CheckpointStore(directory, self.comm)
        funcs = self.checkpoint_functions()
        estimate = 16 * (sum(f.function_space.dofmap.index_map.size_global * f.function_space.dofmap.index_map_bs
                             for f in funcs.values()) + self.domain.mesh.geometry.index_map().size_global * 3)
        path = store.begin(step, estimate)  # a full disk stops every rank here, before any collective write
        adios4dolfinx.write_mesh_input_order(path, self.domain.mesh)
        for key, f in funcs.items():
            adios4dolfinx.write_function_on_input_mesh(path, f, time=0.0, name=key)
        problems = {name: p.checkpoint_state() for name, p in (("ec", self.ec), ("mech", self.mech),
                                                                 ("frac", self.frac))
                    if p is not None and hasattr(p, "checkpoint_state")}
        store.commit(path, {"step": step, "time_s": t, "dt_s": dt, "charge_C_m": self.charge,
                            "physics_hash": self.cfg.physics_hash(), "physics": self.cfg.physics_dict(),
                            "ranks": self.comm.size, "problems": problems, **extra})

    def read_checkpoint(self, directory: Path) -> dict:
        import adios4dolfinx

        from .checkpoint_store import CheckpointDamaged, CheckpointStore

        directory = Path(directory)
        problems = restart_refusal(self.cfg, directory)
        if problems:
            raise ConfigError(problems)
        store = CheckpointStore(directory, self.comm)
        try:
            state = store.select_for_restart(get_logger())  # verified on rank 0 before any collective read
        except CheckpointDamaged as exc:
            raise ConfigError([str(exc)]) from None
        path = directory / state["file"]
        for key, f in self.checkpoint_functions().items():
            adios4dolfinx.read_function(path, f, time=0.0, name=key)
            f.x.scatter_forward()
        for name, p in (("ec", self.ec), ("mech", self.mech), ("frac", self.frac)):
            if p is not None and hasattr(p, "load_checkpoint_state"):
                p.load_checkpoint_state(state.get("problems", {}).get(name, {}))
        self.charge = state.get("charge_C_m", 0.0)
        return state


def restart_refusal(cfg: Config, directory: Path) -> list[str]:
    """Why ``cfg`` may not continue from the checkpoint in ``directory``
    (no checkpoint; not a nacrack checkpoint; the physics changed, named key
    by key); empty if it may. Reads two small files: called before any mesh
    or solver is built and before the run directory is touched."""
    directory = Path(directory)
    state_file = directory / CHECKPOINT_STATE
    if not state_file.exists():
        return [f"--restart: no checkpoint in {directory} (expected {CHECKPOINT_STATE})"]
    try:
        state = json.loads(state_file.read_text())
    except ValueError:
        return [f"--restart: {state_file} is not a nacrack checkpoint (not JSON)"]
    if "ranks" not in state or "file" not in state:
        return [f"--restart: {state_file} is not a nacrack checkpoint"]
    if state.get("physics_hash") == cfg.physics_hash():
        return []
    old = _old_physics(directory, state)
    changes = (cfg.physics_changes(old) if old is not None
               else [f"physics hash {state.get('physics_hash')} -> {cfg.physics_hash()}"])
    if not changes:
        return []
    shown = "; ".join(changes[:8]) + (f"; ... ({len(changes)} in all)" if len(changes) > 8 else "")
    return [f"--restart: the physics in the config changed since the checkpoint ({shown}); "
            "only time, solver and output settings may change on restart"]


def _old_physics(directory: Path, state: dict) -> dict | None:
    """The physics a checkpoint was written with: stored in the state, or
    (checkpoints of older versions) the run's config.resolved.yaml."""
    if isinstance(state.get("physics"), dict):
        return state["physics"]
    resolved = Path(directory).parent / "config.resolved.yaml"
    if resolved.exists():
        import yaml

        d = yaml.safe_load(resolved.read_text()) or {}
        return {k: v for k, v in d.items() if k not in Config.NON_PHYSICS}
    return None


def schedule_breakpoints(cfg: Config) -> list[float]:
    """Times [s] where a load schedule changes slope: steps end exactly there."""
    times = set()
    for v in (cfg.loading.electrical.voltage, cfg.loading.electrical.current_density, cfg.loading.mechanical.value):
        if v is not None and not isinstance(v, (int, float)):
            times.update(float(p[0]) for p in v.points)
    return sorted(times)


def checkpoint_due(step: int, wall_since_last_s: float, output, comm: MPI.Comm) -> bool:
    """Every ``output.checkpoint_every`` steps, or once ``output.checkpoint_wall_time``
    seconds of wall-clock time have passed since the last checkpoint. Collective:
    rank 0's clock decides, so that every rank writes (adios4dolfinx is collective)."""
    if step % output.checkpoint_every == 0:
        return True
    if output.checkpoint_wall_time <= 0.0:
        return False
    return bool(comm.bcast(wall_since_last_s >= output.checkpoint_wall_time, root=0))


def run_coupled(ctx) -> None:
    """Time loop with adaptive dt, checkpoints, short-circuit detection."""
    from .xdmf import FieldWriter

    cfg: Config = ctx.cfg
    log = get_logger()
    solver = CoupledSolver(ctx)
    ctx.dofs = solver.dofs()
    log.info(f"mesh: {solver.domain.n_grains} grain(s); DOFs {ctx.dofs}")
    ckdir = ctx.outdir / "checkpoint"
    t, step, dt = 0.0, 0, cfg.time.dt
    dt_max = cfg.time.dt_max or cfg.time.t_end
    if ctx.restart:
        state = solver.read_checkpoint(ckdir)
        t, step, dt = state["time_s"], state["step"], state["dt_s"]
        ctx.scalars.load_existing(upto_step=step)
        log.info(f"restart from step {step}, t = {t:.4e} s ({state['ranks']} -> {ctx.comm.size} ranks)")
    writer = FieldWriter(ctx.outdir / "fields.xdmf", solver.domain.mesh, restart_time=t if ctx.restart else None)
    if not ctx.restart:
        with ctx.phase("output"):
            writer.write(solver.output_functions(), 0.0)
    progress = Progress(cfg.time.t_end, cfg.output.progress_every)
    breakpoints = schedule_breakpoints(cfg)
    ctx.steps, ctx.time = step, t
    last_ck, last_ck_wall = step, ctx.wall()
    try:
        while t < cfg.time.t_end * (1 - 1e-12) and step < cfg.time.max_steps:
            check_stop(ctx.comm)  # a SIGTERM/SIGINT stops here, after a completed step
            # dt is the step-size target; h the step actually taken (clipped
            # to t_end and to schedule breakpoints without shrinking the target)
            h = min(dt, dt_max, cfg.time.t_end - t)
            upcoming = [b for b in breakpoints if b > t * (1 + 1e-12) + 1e-15]
            if upcoming and upcoming[0] - t < h:
                h = upcoming[0] - t
            solver.save_state()
            t_wall = time.perf_counter()
            reason = "another rank failed"
            try:
                info = solver.step(t + h, h)
                ok = 1
            except SolveError as exc:
                ok, reason = 0, str(exc)
            except Interrupted:
                solver.restore_state()  # stop at the last completed step
                raise
            ok = ctx.comm.allreduce(ok, op=MPI.MIN)  # failure on one rank is failure on all
            if ok and info["problems"]:
                if h * cfg.time.cutback >= cfg.time.dt_min:
                    ok, reason = 0, "; ".join(info["problems"])
                else:
                    # a cut cannot help (e.g. unstable crack growth at fixed load): accept, say so
                    log.info(f"step {step + 1} accepted at the smallest dt: {'; '.join(info['problems'])}")
            if not ok:
                solver.restore_state()
                dt = h * cfg.time.cutback
                log.info(f"step {step + 1} rejected ({reason}); dt -> {dt:.3e} s")
                if dt < cfg.time.dt_min:
                    raise SolveError(f"dt = {dt:.3e} s below dt_min = {cfg.time.dt_min:.3e} s at t = {t:.4e} s")
                continue
            solver.commit()
            info.pop("problems")
            info["stagger_converged"] = int(info.pop("converged"))
            t += h
            step += 1
            ctx.steps, ctx.time = step, t
            row = {"step": step, "time_s": t, "dt_s": h, **solver.scalars(t), **info,
                   "wall_s": ctx.wall(), "step_wall_s": time.perf_counter() - t_wall}
            with ctx.phase("output"):
                ctx.scalars.append(row)
                if step % cfg.output.every == 0:
                    writer.write(solver.output_functions(), t)
                if checkpoint_due(step, ctx.wall() - last_ck_wall, cfg.output, ctx.comm):
                    solver.write_checkpoint(ckdir, step, t, dt, {})
                    writer.merge()
                    last_ck, last_ck_wall = step, ctx.wall()
            progress.step(step, t, h, _progress_text(row))
            shorted, where = solver.short_circuit()
            if shorted:
                ctx.status = "short_circuit"
                ctx.extra["short_circuit"] = {"time_s": t, "location_m": where}
                log.info(f"short circuit at t = {t:.4e} s, location {where}")
                break
            easy = (info["stagger_converged"] and info["stagger_iterations"] <= max(3, cfg.solver.stagger.max_iterations // 2)
                    and info["newton_iterations"] <= 8 * max(1, info["stagger_iterations"]))
            if easy:
                dt *= cfg.time.growth
        else:
            ctx.status = "completed"
        if ctx.status == "running":
            ctx.status = "completed"
    finally:
        # every stop writes the last good state (the state was restored on failure)
        with ctx.phase("output"):
            if step != last_ck or not (ckdir / CHECKPOINT_STATE).exists():
                try:
                    solver.write_checkpoint(ckdir, step, t, dt, {})
                except Exception as exc:  # never hide the original error
                    log.info(f"could not write the final checkpoint: {exc}")
            if cfg.output.every > 1 and step % cfg.output.every:
                writer.write(solver.output_functions(), t)
            writer.close()


def _progress_text(row: dict) -> str:
    parts = []
    for key, fmt in (("current_density_A_m2", "i {:.3e} A/m^2"), ("dendrite_tip_m", "tip {:.3e} m"),
                     ("crack_length_m", "crack {:.3e} m"), ("stagger_iterations", "stag {}"), ("fracture_iterations", "frac {}"),
                     ("newton_iterations", "newton {}"), ("krylov_iterations", "ksp {}")):
        if key in row and row[key] == row[key]:
            parts.append(fmt.format(row[key]))
    return "  ".join(parts)
