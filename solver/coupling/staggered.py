"""The staggered electro-chemo-mechanical solver (docs/model.md#coupling-and-time-stepping).

Each time step t_n -> t_n + dt, iterate until converged:

    (M) mechanics         u   with xi, d frozen    -> pressure p for (E)
    (E) electrochemistry  (xi, c~, phi) by Newton with u, d frozen
    (F) fracture          history H, then d; only once (M) and (E) have
                          converged for the current d (or in the last
                          iteration): damage is irreversible, and cells
                          broken by an unconverged iterate stayed broken

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
iteration (``time.stop.check_stop``), abandoning the step under way. The time
loop (dt control, checkpoints, statuses) is ``time.loop``; this module is one step.
"""

from __future__ import annotations

import numpy as np
from dolfinx import fem
from mpi4py import MPI

from .. import scales
from ..config import ConfigError
from ..io.log import get_logger
from ..numerics.linalg import SolveError, global_max_abs
from ..physics.phases import make_damage_function
from ..time.stop import check_stop


class PressureRelaxation:
    """Relaxation of the coupling pressure between staggered iterations of one
    step: p_k = p_(k-1) + omega_k r_k, r_k = p~_k - p_(k-1), with p~_k the
    pressure of the mechanics just solved and p_(k-1) the one (E) used last.
    ``fixed``: omega_k = omega. ``aitken`` (Irons-Tuck / Aitken delta^2, the
    secant method on r): omega_k = -omega_(k-1) r_(k-1).(r_k - r_(k-1)) /
    |r_k - r_(k-1)|^2, clipped to [0.01, 1]. On a linear feedback p~ = p* +
    g (p - p*) the plain iteration diverges for g < -1, omega = 1 / (1 - g)
    lands on p* at once, and Aitken lands on p* at its second update for any
    g <= 0 (the stress slows plating: g < 0).

    Aitken's first relaxed update (k = 2) of a step has no secant yet: it uses
    the start omega. ``CoupledSolver`` starts each step from the factor the
    last step ended with, carried to the new dt by ``carried_omega`` (g
    scales with dt), not from ``relaxation`` again: restarting at omega = 0.5
    where g ~ -10 multiplies the error by 1 - 0.5 (1 - g) ~ -4.5 at k = 2,
    and on c4_damaged_domain that overshoot cracked cells that the converged
    step does not crack (the map then changes under the secant) and left
    steps unconverged after 20 iterations."""

    OMEGA_MIN = 0.01

    @classmethod
    def carried_omega(cls, omega_last: float, dt_last: float, dt: float, omega_max: float) -> float:
        """Start omega of a step at dt from the Aitken factor omega_last that
        ended the step at dt_last: omega_last ~ 1 / (1 - g_last), g ~ dt, so
        omega = 1 / (1 - g_last dt / dt_last), within [OMEGA_MIN, omega_max]."""
        g = (1.0 - 1.0 / omega_last) * dt / dt_last
        return min(omega_max, max(cls.OMEGA_MIN, 1.0 / (1.0 - min(g, 0.0))))

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
    """Owns the domain, the field problems and the shared coupling fields; the
    model the time loop advances (``coupling.protocol.Model``).

    Shared fields, created here and handed to the problems:
      xi (P1)  Na-metal phase, copied from electrochemistry after (E)
      d        fracture phase field (P1; DG0 for 'damaged_domain'), copied after (F)
      p (DG0)  coupling pressure [MPa] (electrochemistry.coupling_pressure: -tr(sigma)/3
               or the interface traction -n.sigma.n), interpolated from mechanics after (M)
    """

    def __init__(self, ctx, domain=None):
        from ..mesh import build_domain

        self.ctx, self.cfg, self.comm = ctx, ctx.cfg, ctx.comm
        cfg = self.cfg
        self.log = get_logger()
        with ctx.phase("mesh"):
            self.domain = domain or build_domain(cfg, self.comm)  # domain: an adapted mesh (mesh.adapt)
        msh = self.domain.mesh
        V1 = fem.functionspace(msh, ("Lagrange", 1))
        self.xi = fem.Function(V1, name="metal")
        self.d = make_damage_function(self.domain, cfg)
        # cell-wise (DG0) pressure: the stress of P1 displacements jumps between
        # cells, and a vertex value would depend on the cell visited last (on
        # the partition)
        Q0 = fem.functionspace(msh, ("DG", 0))
        self.p = fem.Function(Q0, name="hydrostatic_pressure_MPa")
        # the same pressure at the quadrature points of the electrochemistry
        # residual: what the stress-coupled kinetics see (and the staggered
        # relaxation acts on)
        from ..physics.electrochemistry import pressure_space

        self.p_q = fem.Function(pressure_space(msh), name="coupling_pressure_MPa")
        self.ec = self.mech = self.frac = None
        if cfg.electrochemistry.enabled:
            from ..physics.electrochemistry import ElectrochemistryProblem

            self.ec = ElectrochemistryProblem(self.domain, cfg, pressure=self.p_q, d=self.d, pressure_report=self.p)
            self._copy_xi()
        if cfg.mechanics.enabled:
            from ..physics.mechanics import MechanicsProblem

            self.mech = MechanicsProblem(self.domain, cfg, xi=self.xi, d=self.d)
            ec = cfg.electrochemistry
            p_ufl = (self.mech.interface_pressure(ec.interface_width / scales.LENGTH)
                     if ec.coupling_pressure == "normal" else self.mech.pressure())
            self._p_expr = fem.Expression(p_ufl, Q0.element.interpolation_points())
            self._p_q_expr = fem.Expression(p_ufl, self.p_q.function_space.element.interpolation_points())
        if cfg.fracture.enabled:
            if self.mech is None:
                raise ConfigError(["fracture.enabled = true: needs mechanics.enabled = true (stress drives fracture)"])
            from ..physics.fracture import FractureProblem

            self.frac = FractureProblem(self.domain, cfg, self.mech)
            self._copy_d()
        if not (self.ec or self.mech):
            raise ConfigError(["electrochemistry.enabled and mechanics.enabled are both false: nothing to solve"])
        self.charge = 0.0
        self.fracture_subiterations = 0
        self.monolithic = None
        self.staggered_fallbacks = 0
        self._aitken_last = None  # (omega, dt) at the end of the last staggered step (PressureRelaxation)
        if cfg.solver.coupling == "monolithic" and self.ec is not None and self.mech is not None:
            from .monolithic import MonolithicCoupling

            self.monolithic = MonolithicCoupling(self)

    solve_phase = None  # step() charges mechanics, electrochemistry and fracture itself

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
        self.p_q.interpolate(self._p_q_expr)
        self.p_q.x.scatter_forward()

    def dofs(self) -> int:
        return sum(self.dofs_by_field().values())

    def dofs_by_field(self) -> dict:
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
        self._saved = (self.xi.x.array.copy(), self.d.x.array.copy(), self.p.x.array.copy(), self.p_q.x.array.copy())

    def restore_state(self):
        for p in self.problems():
            p.restore_state()
        for f, a in zip((self.xi, self.d, self.p, self.p_q), self._saved):
            f.x.array[:] = a
            f.x.scatter_forward()

    # -- one step ----------------------------------------------------------
    def step(self, t: float, dt: float) -> dict:
        """The step ending at time t [s]: one monolithic Newton per pass, or staggered iterations."""
        if self.monolithic is not None:
            try:
                return self.monolithic.step(t, dt)
            except SolveError as exc:
                if self.cfg.solver.newton.fallback == "none":
                    raise  # the time loop restores the state and cuts dt
                # the reference scheme takes the step before dt is cut (logged, counted)
                self.restore_state()
                self.staggered_fallbacks += 1
                self.log.info(f"coupled Newton failed at t = {t:.4e} s ({exc}); the step is retried with the "
                              f"staggered scheme ({self.staggered_fallbacks} time(s) so far)")
                info = self._staggered_step(t, dt)
                info["staggered_fallback"] = 1
                return info
        return self._staggered_step(t, dt)

    def _staggered_step(self, t: float, dt: float) -> dict:
        """Staggered iterations (M, E, F) for the step ending at time t [s]."""
        cfg, ctx = self.cfg, self.ctx
        st = cfg.solver.stagger
        n_fields = len(self.problems())
        newton = krylov = 0
        self.fracture_subiterations = 0
        omega0 = st.relaxation
        if st.relaxation_method == "aitken" and self._aitken_last is not None:
            omega0 = PressureRelaxation.carried_omega(*self._aitken_last, dt, st.relaxation)
        relax = PressureRelaxation(self.p_q, omega0, st.relaxation_method, self.comm)
        xi0, d0 = self.xi.x.array.copy(), self.d.x.array.copy()
        converged, k = False, 0
        dxi = dd = res_u = 0.0  # a single field converges at once: no change measured
        for k in range(1, st.max_iterations + 1):
            if k > 1:
                check_stop(self.comm)  # a stop request abandons the step (restored by the caller)
            xi_prev, d_prev = self.xi.x.array.copy(), self.d.x.array.copy()
            if self.mech is not None:
                with ctx.phase("mechanics"):
                    krylov += self.mech.solve(t, dt)["krylov_iterations"]
                    self._update_pressure()
                    relax.apply()
            if self.ec is not None:
                with ctx.phase("electrochemistry"):
                    stats = self.ec.solve(t, dt)  # from the committed state at t - dt
                    newton += stats["newton_iterations"]
                    krylov += stats["krylov_iterations"]
                    self._copy_xi()
            # (F) leaves xi alone: its change and, while d stays, the mechanics
            # residual serve both the readiness of (F) and the convergence test
            dxi = global_max_abs(self.xi.x.array - xi_prev, self.comm) if n_fields > 1 else 0.0
            measured = None  # the mechanics residual with the current d, if the readiness test took it
            if self.frac is not None:
                ready, measured = self._fracture_ready(dxi, k)
                if ready:
                    krylov += self._fracture_stage(t)
                    measured = None  # d changed: measured again below
            if n_fields == 1:
                converged = True
                break
            dd = global_max_abs(self.d.x.array - d_prev, self.comm)
            res_u = measured if measured is not None else self._mechanics_residual()
            if dxi <= st.tol_xi and dd <= st.tol_d and res_u <= st.tol_u:
                converged = True
                break
        if st.relaxation_method == "aitken" and k > 1:
            self._aitken_last = (relax.omega, dt)  # the next step starts from it
        problems = self.step_problems(xi0, d0, converged,
                                      f"staggered iteration not converged in {st.max_iterations} iterations "
                                      f"(dxi {dxi:.2e}, dd {dd:.2e}, mechanics residual {res_u:.2e})")
        info = {"stagger_iterations": k, "newton_iterations": newton, "krylov_iterations": krylov,
                "problems": problems, "converged": converged, "xi_change": self.xi_change}
        if self.frac is not None:
            info["fracture_iterations"] = self.fracture_subiterations
        return info

    def _fracture_ready(self, dxi: float, k: int) -> tuple[bool, float | None]:
        """Whether stage (F) runs in stagger iteration k, and the mechanics
        residual measured to decide it (None: not measured): only once (M) and
        (E) have converged for the current damage (dxi = max|xi_k - xi_k-1| <=
        tol_xi and the mechanics residual with the new xi <= tol_u), or in the
        last iteration. Damage is irreversible: a cell broken by an iterate that
        has not converged stays broken. With (F) in every iteration,
        macro_fractal's first step (dt = 1 s) broke 10.8 um of cracks at a
        pressure of 8.09 MPa; from a converged (M, E), as the monolithic
        scheme does, none (7.29 MPa; monolithic 7.23 MPa)."""
        st = self.cfg.solver.stagger
        if self.mech is None or self.ec is None or k >= st.max_iterations:
            return True, None
        if dxi > st.tol_xi:
            return False, None
        res_u = self._mechanics_residual()
        return res_u <= st.tol_u, res_u

    def _mechanics_residual(self) -> float:
        """The relative mechanics residual with the current xi and d (0 without
        mechanics, or for mechanics alone, which is solved exactly)."""
        if self.mech is None or (self.frac is None and self.ec is None):
            return 0.0
        with self.ctx.phase("mechanics"):
            return self.mech.residual_norm()

    def step_problems(self, xi0: np.ndarray, d0: np.ndarray, converged: bool, unconverged: str) -> list[str]:
        """Why the step that started from (xi0, d0) should be rejected: the coupled
        iteration did not converge (``unconverged`` says how; with
        on_max_iterations 'accept' it is only logged), or the step changed xi
        or d by more than time.max_dxi / time.max_dd. Used by both schemes."""
        cfg = self.cfg
        problems = []
        if not converged and cfg.solver.stagger.on_max_iterations == "accept":
            self.log.info(f"{unconverged}; step accepted (on_max_iterations: accept)")
        elif not converged:
            problems.append(unconverged)
        change_xi = global_max_abs(self.xi.x.array - xi0, self.comm)
        self.xi_change = change_xi  # scalars.csv xi_change; the step-size controller's time.dxi_target
        change_d = global_max_abs(self.d.x.array - d0, self.comm)
        if change_xi > cfg.time.max_dxi or change_d > cfg.time.max_dd:
            problems.append(f"max|dxi| = {change_xi:.3f} (limit {cfg.time.max_dxi}), "
                            f"max|dd| = {change_d:.3f} (limit {cfg.time.max_dd})")
        return problems

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
                    krylov += self.mech.solve(t)["krylov_iterations"]
            d_prev = self.d.x.array.copy()
            with ctx.phase("fracture"):
                self.frac.update_history()
                krylov += self.frac.solve(t)["krylov_iterations"]
                self._copy_d()
            if st.fracture_iterations > 1 and global_max_abs(self.d.x.array - d_prev, self.comm) <= st.tol_d:
                break
        self.fracture_subiterations += j + 1
        if j > 0:
            with ctx.phase("mechanics"):
                self._update_pressure()
        return krylov

    def solve(self, t: float, dt: float) -> dict:
        """The FieldProblem step: ``step`` plus whether it was easy (the
        controller grows dt after easy steps) and the convergence flag as the
        scalars.csv column ``stagger_converged``."""
        info = self.step(t, dt)
        info["stagger_converged"] = int(info.pop("converged"))
        st = self.cfg.solver.stagger
        info["easy"] = bool(info["stagger_converged"]
                            and info["stagger_iterations"] <= max(3, st.max_iterations // 2)
                            and info["newton_iterations"] <= 8 * max(1, info["stagger_iterations"]))
        return info

    def commit(self):
        """Accept the step: the problems move their 'old' state forward."""
        for p in self.problems():
            p.commit()

    # -- per-step quantities ------------------------------------------------
    def scalars(self, t: float) -> dict:
        row = {}
        if self.ec is not None:
            row.update(self.ec.scalars(t))
        if self.mech is not None:
            row.update(self.mech.scalars(t))
            if self.ec is None:  # standalone mechanics: the load on the loaded boundary
                row["reaction_force_y_N_m"] = float(self.mech.reaction_force(self.cfg.loading.mechanical.boundary)[1])
        if self.frac is not None:
            row.update(self.frac.scalars(t))
        return row

    def output_functions(self) -> list:
        funcs = []
        if self.ec is not None:
            funcs += list(self.ec.output_functions())
        if self.mech is not None:
            funcs += self.mech.output_functions()
        if self.frac is not None:
            funcs.append(self.d)
        funcs += [self.domain.grain_id, self.domain.theta]
        return funcs

    def short_circuit(self):
        if self.ec is None:
            return False, None
        return self.ec.is_short_circuit(self.cfg.time.short_circuit_distance)

    # -- checkpoints (written and read by io.checkpoint) ------------------------
    def _named_problems(self):
        return [(name, p) for name, p in (("ec", self.ec), ("mech", self.mech), ("frac", self.frac)) if p is not None]

    def checkpoint_functions(self) -> dict:
        funcs = {"xi_shared": self.xi, "d_shared": self.d, "p_shared": self.p}
        for name, prob in self._named_problems():
            for key, f in prob.checkpoint_functions().items():
                funcs[f"{name}_{key}"] = f
        return funcs

    @property
    def optional_checkpoint_keys(self) -> tuple[str, ...]:
        """Checkpoint Functions that older versions did not write (read as 0 when absent)."""
        return tuple(f"{name}_{key}" for name, prob in self._named_problems()
                     for key in getattr(prob, "optional_checkpoint_keys", ()))

    def checkpoint_state(self) -> dict:
        state = {"charge_C_m": self.charge,
                 "problems": {name: p.checkpoint_state() for name, p in self._named_problems()}}
        if self._aitken_last is not None:  # a restart starts its next step from the same relaxation factor
            state["aitken_omega_dt"] = [float(v) for v in self._aitken_last]
        return state

    def load_checkpoint_state(self, state: dict) -> None:
        for name, p in self._named_problems():
            p.load_checkpoint_state(state.get("problems", {}).get(name, {}))
        self.charge = state.get("charge_C_m", 0.0)
        last = state.get("aitken_omega_dt")  # absent in older checkpoints: the next step starts from relaxation
        self._aitken_last = tuple(last) if last else None
