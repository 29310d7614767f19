"""Monolithic coupling: one Newton for (u, xi, c~, phi) per step, fracture staggered.

Per time step t_n -> t_n + dt, with the damage d frozen, solve together

    div sigma(u, xi, d) = 0                                  (mechanics, block u)
    R_xi(xi, c~, phi; p(u, xi)) = 0, R_c = 0, R_phi = 0      (electrochemistry, block w)

where the deposit pressure in the stress-coupled Butler-Volmer overpotential,
eta_eff = eta_a + Omega p / (nF), is the live UFL expression of (u, xi)
(p = -tr(sigma)/3, or the interface traction with ``coupling_pressure:
normal``), evaluated at the quadrature points of the electrochemistry
residual. The Jacobian therefore carries both couplings:

    J = [ dF_u/du   dF_u/dw ]      dF_u/dw: the eigenstrain eps* = eps_v/3 h(xi) I and C(xi)
        [ dF_w/du   dF_w/dw ]      dF_w/du: the pressure in the kinetics (the stress-kinetics feedback)

which is what the staggered scheme iterated on 9-11 times per step. It is
solved by :class:`solver.numerics.block_newton.BlockNewton`: GMRES with a multiplicative
field split, mechanics first (CG-like block: GAMG with the rigid-body
near-nullspace), then electrochemistry (its own multiplicative split over
xi, c~, phi with BoomerAMG), inexact Newton (Eisenstat-Walker), a lagged
preconditioner, and the galvanostatic voltage bordered at one linear solve
per iteration.

Fracture carries the irreversible history, so it stays outside the Newton:
after each coupled solve the history H and d are updated (with
``stagger.fracture_iterations`` > 1 alternating mechanics and fracture at
the frozen deposit, as in the staggered scheme). If that changed d by more
than ``stagger.tol_d``, the coupled Newton is solved again with the new d
(warm start); the step has converged when a pass leaves d unchanged to
tol_d. Coupled iterations per step = these passes (1 when no crack moves).

A coupled Newton that fails (no convergence, a non-finite residual) does not
cut dt at once: ``CoupledSolver.step`` retries the step with the staggered
scheme (logged, column ``staggered_fallback``), and only if that fails too is
dt cut; with ``solver.newton.fallback: none`` dt is cut at once.

Both schemes evaluate the pressure the kinetics see at the quadrature points
of the electrochemistry residual (the staggered scheme through a quadrature
Function, ``CoupledSolver.p_q``), so they solve the same discrete equations
and differ only by where each stops iterating.
"""

from __future__ import annotations

import ufl

from .. import scales
from ..numerics.block_newton import BlockNewton, Border
from ..numerics.linalg import SolveError, global_max_abs
from ..numerics.petsc_defaults import COUPLED_PETSC
from ..physics.electrochemistry import XI
from ..time.stop import check_stop

# The coupled Jacobian's linear solver (prefix ``coupled_``; overrides from
# solver.petsc.coupled; numerics/petsc_defaults.py). ksp_rtol is set per Newton iteration (forcing term).
COUPLED_KSP_DEFAULTS = COUPLED_PETSC


class MonolithicCoupling:
    """The coupled Newton over the mechanics and electrochemistry of a
    :class:`solver.coupling.staggered.CoupledSolver` (which owns the problems, the shared
    xi, d, p and the fracture stage)."""

    def __init__(self, cs):
        self.cs = cs
        cfg, ec, mech = cs.cfg, cs.ec, cs.mech
        self.cfg, self.ec, self.mech, self.comm = cfg, ec, mech, cs.comm
        xi_w = ec.u[XI]
        # mechanics residual with the electrochemistry's own xi (dF_u/dxi in the Jacobian)
        F_u = ufl.replace(mech.F, {mech.xi: xi_w})
        # the pressure of the kinetics as a live expression of (u, xi)
        width = cfg.electrochemistry.interface_width / scales.LENGTH
        p_ufl = (mech.interface_pressure(width) if cfg.electrochemistry.coupling_pressure == "normal"
                 else mech.pressure())
        p_ufl = ufl.replace(p_ufl, {mech.xi: xi_w})
        F_w = ufl.replace(ec.F, {cs.p_q: p_ufl}) if cfg.electrochemistry.stress_coupling else ec.F
        nw = cfg.solver.newton
        border = None
        if ec.galvanostatic:
            self._I_target = 0.0
            border = Border(block=1, voltage=ec.voltage, bcs_unit=ec.bcs_unit, g_form=ec._g_form,
                            g_depends_on_u=ec.reactive, residual=lambda: ec.rate() - self._I_target,
                            scale=lambda: abs(self._I_target))
        overrides = cfg.solver.petsc.get("coupled") if cfg.solver.petsc else None
        self.newton = BlockNewton(
            [F_u, F_w], [mech.u, ec.u], [mech.bcs, ec.bcs], "coupled_", self.comm, COUPLED_KSP_DEFAULTS,
            overrides=overrides, splits=("mechanics", "electrochemistry"), near_nullspaces={0: mech.nullspace},
            border=border, rtol=nw.coupled_rtol, max_iterations=nw.max_iterations, forcing=nw.forcing,
            eta_max=nw.forcing_max, reuse_preconditioner=nw.reuse_preconditioner,
            on_iteration=lambda: check_stop(self.comm),  # a stop request abandons the step under way
            lag_jacobian=nw.lag_jacobian, carry_jacobian=nw.carry_jacobian)
        # the mechanics block converges at coupled_rtol of its force scale, as the
        # electrochemistry at coupled_rtol of its first residual; never tighter
        # than 100 mechanics.newton_rtol (its round-off floor), never looser
        # than stagger.tol_u
        self.rtol_u = min(cfg.solver.stagger.tol_u, max(nw.coupled_rtol, mech.newton_rtol * 100.0))
        self._sensitivity_dt = None  # the dt at which the voltage sensitivity was last solved
        self._jacobian_dt = None  # the dt of the last assembled coupled Jacobian (carry_jacobian)
        self.predictions = 0  # steps that started from the rate predictor

    def solve_coupled(self, t: float, dt: float):
        """One coupled Newton at the current d for the step ending at t.
        Returns its NewtonStats (iterations, Krylov iterations, linear solves, ...)."""
        ec, mech, cs = self.ec, self.mech, self.cs
        mech.set_load(t)
        for bc in mech.bcs:
            bc.set(mech.u.x.array)
        mech.u.x.scatter_forward()
        if ec.galvanostatic:
            self._I_target = ec.galvanostatic_target(t)
        if not _same_dt(self._jacobian_dt, dt):
            self.newton.jacobian_valid = False  # the 1/dt terms of a carried Jacobian would be off
        with cs.ctx.phase("coupled"):
            st = self.newton.solve(scales=[self._mechanics_scale, self._ec_scale],
                                   rtols=[self.rtol_u, self.cfg.solver.newton.coupled_rtol],
                                   update_test=[False, True])
        if st.jacobians:
            self._jacobian_dt = dt
        if self._ec_scale is None:  # the step's first residual judges every pass of the step
            self._ec_scale = st.first_residuals[1]
        return st

    def _predict(self, dt: float) -> None:
        """The step's initial guess: the metal advanced at the last step's rate
        (ElectrochemistryProblem.predict_xi) instead of the committed state.
        At a large dt the committed state is far from the solution (dxi/dt = 0
        there, so kinetics and charge balance start out of balance) and the
        Newton can crawl with a damped line search for many iterations.
        Measured (2 ranks, the first steps): a 6-grain phase-field polycrystal
        at dt = 0.5 s, 9 instead of 15-17 Newton iterations per step with the
        same tip and crack length; but 205 against 186 Newton iterations over
        20 steps of coupled_constant_current and 49 against 46 over 10 of
        macro_fractal, where dt grows and the rate overshoots. A residual test
        cannot choose: the predicted state's residual was 4-8 x the committed
        one's where it saved the most. Hence an option, off by default."""
        if self.ec.predict_xi(dt):
            self.predictions += 1

    def _mechanics_scale(self) -> float:
        """The force scale of the mechanics block at the current state (see
        MechanicsProblem.force_scale: internal forces, the eigenstrain load of
        the deposit at u = 0), without the residual itself."""
        self.ec._update_xi()
        self.cs._copy_xi()
        return self.mech.force_scale()

    def step(self, t: float, dt: float) -> dict:
        """The step ending at time t [s] (from the committed state at t - dt)."""
        cs, ec, cfg = self.cs, self.ec, self.cfg
        st = cfg.solver.stagger
        cs.fracture_subiterations = 0
        xi0, d0 = cs.xi.x.array.copy(), cs.d.x.array.copy()
        newton = krylov = solves = sens = jacobians = 0
        ec.begin_step(t - dt, dt)
        # dU/dV (the voltage sensitivity) is kept across passes and steps at the
        # same dt: BlockNewton solves it again as soon as the voltage corrections
        # stop contracting; a new dt changes the operator (the 1/dt terms)
        if not _same_dt(self._sensitivity_dt, dt):
            self.newton.sensitivity_valid = False
            self._sensitivity_dt = dt
        self._ec_scale = None
        if cfg.solver.newton.predictor == "rate":
            self._predict(dt)
        converged, k, dd = False, 0, 0.0
        for k in range(1, st.max_iterations + 1):
            if k > 1:
                check_stop(self.comm)
            try:
                ns = self.solve_coupled(t, dt)
            except SolveError:
                ec.abandon_step()
                raise
            newton += ns.iterations
            krylov += ns.krylov_iterations
            solves += ns.linear_solves
            sens += ns.sensitivity_solves
            jacobians += ns.jacobians
            ec.finish_step(dt, ns.iterations, ns.krylov_iterations)
            cs._copy_xi()
            cs._update_pressure()
            if cs.frac is None:
                converged = True
                break
            d_prev = cs.d.x.array.copy()
            krylov += cs._fracture_stage(t)
            dd = global_max_abs(cs.d.x.array - d_prev, self.comm)
            if dd <= st.tol_d or st.fracture_coupling == "lagged":
                converged = True
                break
        problems = cs.step_problems(xi0, d0, converged, f"coupled iteration not converged in "
                                    f"{st.max_iterations} passes (dd {dd:.2e})")
        info = {"stagger_iterations": k, "newton_iterations": newton, "krylov_iterations": krylov,
                "coupled_solves": solves, "coupled_jacobians": jacobians, "staggered_fallback": 0,
                "problems": problems, "converged": converged, "xi_change": cs.xi_change}
        if ec.galvanostatic:
            info["voltage_sensitivity_solves"] = sens
        if cs.frac is not None:
            info["fracture_iterations"] = cs.fracture_subiterations
        return info


def _same_dt(dt_ref: float | None, dt: float) -> bool:
    """Whether an operator built at time step dt_ref (None: none built) may
    stand for one at dt: its 1/dt terms within 25%. Shared by the voltage
    sensitivity and the carried Jacobian."""
    return dt_ref is not None and abs(dt / dt_ref - 1.0) <= 0.25
