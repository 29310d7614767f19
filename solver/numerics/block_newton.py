"""One Newton method for a system of field blocks, with an optional bordered
scalar unknown (the galvanostatic cell voltage).

Problem: find U = (U_1, ..., U_n) (one DOLFINx Function per block) with

    F_i(U_1, ..., U_n) = 0,   i = 1..n,   U_i = g_i on the Dirichlet boundaries,

and, when a border is given, a scalar V entering the Dirichlet value of one
block (the cell voltage on the counter electrode) with the global constraint

    G(U) = int rate(U) dx - I_target = 0.

Newton iteration k, with J_ij = dF_i / dU_j assembled block by block into a
PETSc MatNest (one Krylov solve of the coupled system per iteration):

    J a = -F                             (Newton update at fixed V)
    J b = -J_(:,D) e,  b_D = e           (response to a unit change of V; see below)
    dV  = -(G + g.a) / (g.b),  dU = a + dV b,   g = dG/dU

The sensitivity b is solved with a loose tolerance when the caller
invalidates it (the monolithic coupling: at a new dt) and reused, across
iterations and time steps, while the voltage corrections contract (|dV_k| <=
|dV_(k-1)| / 2; else b is solved again): with an approximate b the update still meets the
linearised constraint exactly, and the residual it leaves, dV J (b~ - b), shrinks
with dV (the voltage settles in the first iterations). So a galvanostatic Newton
iteration costs one linear solve, not two.

Inexact Newton (Eisenstat and Walker 1996, choice 2): the Krylov tolerance of
iteration k is eta_k = gamma (|F_k| / |F_(k-1)|)^2, safeguarded by
gamma eta_(k-1)^2 when that is above 0.1 and clipped to [eta_min, eta_max];
``forcing: fixed`` uses eta_max throughout, ``options`` the ksp_rtol of the
PETSc options (the staggered electrochemistry: 1e-9, exact Newton). Convergence is judged on the
residual of each block relative to its own scale (``scales``, set by the
caller) or, for blocks that allow it, on an update below rtol max(1, |U|_inf).

The preconditioner is kept across Newton iterations and time steps while it
works: it is rebuilt at the first solve, after a Krylov failure, and when a
solve needs more than ``reuse_growth`` times the iterations of the first solve
after the last rebuild (and more than ``reuse_min_its``). A Krylov solve that
fails even with a fresh preconditioner is retried once with a parallel direct
solve (MUMPS) of the assembled (AIJ) Jacobian.

Direct solve: with ``pc_type: lu`` (or cholesky) in the overrides (e.g.
``solver.petsc.coupled: {ksp_type: preonly, pc_type: lu}``) the block system
is copied into one AIJ matrix after each Jacobian assembly and factorised
(MUMPS unless pc_factor_mat_solver_type says otherwise); a lagged Jacobian
reuses the factors. On small meshes (below a few 10^4 DOFs in 2D) this beats
the Krylov solver with its block preconditioner.

Block equilibration: in the linear solves the rows of block i are divided by
its residual scale (the same scale that judges convergence), so that the
Krylov tolerance, a relative reduction of the whole residual, means the same
for every block whatever its units (mechanics in MPa um, electrochemistry in
um^2/s); use it with right preconditioning and the unpreconditioned norm.

Jacobian lagging (``lag_jacobian`` = q > 0): after an iteration that reduced
the merit by at least the factor q, the next one reuses J (a chord step: the
residual is new, the operator is not); a slower iteration assembles J again.
With ``carry_jacobian`` the first iteration of the next solve (the next time
step) also reuses it, when the last iteration contracted by q and the caller
has not invalidated it (``jacobian_valid = False``, e.g. after dt changed):
with a direct solver a chord iteration costs a residual and two triangular
solves instead of an assembly and a factorisation. A chord that contracts
but too slowly to meet the tolerance within the iterations left (at its last
rate q_k: k + log(distance) / log(1/q_k) > max_iterations, distance = the
largest |F_i| / (rtol_i scale_i)) assembles J again: at specimen scale chord
steps at q = 0.2-0.3 from 1e-2 ran out of iterations at 3x-9x the
tolerance, and the step was rejected.

Line search: full step first, then halving (up to 1/32) until the merit
sum_i (|F_i| / scale_i)^2 + (G / I)^2 does not grow (G and its scale I, the
target current, when bordered: without it a step that satisfies the
constraint but first raises the already small field residuals was cut to
1/32, iteration after iteration), and further (up to 1/2048) while the
residual is not finite.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import ufl
from dolfinx import fem
from dolfinx.fem import petsc as fem_petsc
from mpi4py import MPI
from petsc4py import PETSc

from .linalg import DIRECT_OPTIONS, SolveError, assembly, direct_ksp, set_options

_DEBUG = bool(__import__("os").environ.get("NACRACK_NEWTON_DEBUG"))


@dataclass
class Border:
    """The galvanostatic constraint bordering block ``block``.

    voltage: the fem.Constant in the Dirichlet value of that block (cell voltage).
    bcs_unit: Dirichlet conditions with value 1 on the voltage dofs and 0 on the
        other Dirichlet dofs of the block (for the sensitivity b).
    g_form: compiled linear form dG/dU_block (vector).
    g_depends_on_u: re-assemble g at every iteration (reactive electrode).
    residual: callable -> G(U) (global scalar, after the current U).
    scale: callable -> the size of G that counts as 1 in the line search's
        merit (the target current); None leaves G out of the merit.
    """

    block: int
    voltage: fem.Constant
    bcs_unit: list
    g_form: fem.Form
    g_depends_on_u: bool
    residual: Callable[[], float]
    scale: Callable[[], float] | None = None


@dataclass
class NewtonStats:
    iterations: int = 0
    krylov_iterations: int = 0
    linear_solves: int = 0
    sensitivity_solves: int = 0
    pc_setups: int = 0
    direct_solves: int = 0
    jacobians: int = 0
    residuals: list = field(default_factory=list)
    first_residuals: list = field(default_factory=list)


class BlockNewton:
    """Newton for the blocks F (list of UFL forms), unknowns U (Functions), bcs
    per block (with their values). ``prefix``: PETSc options prefix;
    ``options``: its defaults; ``splits``: names of the blocks (field split
    names, prefix ``<prefix>fieldsplit_<name>_``); ``near_nullspaces``: {block
    index: PETSc NullSpace} (GAMG on elasticity blocks)."""

    def __init__(self, F: Sequence[ufl.Form], U: Sequence[fem.Function], bcs: Sequence[list], prefix: str,
                 comm: MPI.Comm, options: dict, overrides: dict | None = None, splits: Sequence[str] | None = None,
                 near_nullspaces: dict | None = None, border: Border | None = None, rtol: float = 1e-8,
                 max_iterations: int = 25, forcing: str = "eisenstat_walker", eta_max: float = 1e-2,
                 eta_min: float = 1e-10, reuse_preconditioner: bool = True, reuse_growth: float = 3.0,
                 reuse_min_its: int = 30, name: str = "coupled", on_iteration: Callable[[], None] | None = None,
                 lag_jacobian: float = 0.0, carry_jacobian: bool = False):
        self.n = len(U)
        self.U, self.comm, self.prefix, self.name = list(U), comm, prefix, name
        self.bcs = [list(b) for b in bcs]
        self.all_bcs = [bc for b in self.bcs for bc in b]
        self.F = [fem.form(f) for f in F]
        self.J = [[_jacobian_block(F[i], U[j]) for j in range(self.n)] for i in range(self.n)]
        self.border = border
        self.rtol, self.max_it = rtol, max_iterations
        self.forcing, self.eta_max, self.eta_min = forcing, eta_max, eta_min
        self.reuse, self.reuse_growth, self.reuse_min_its = reuse_preconditioner, reuse_growth, reuse_min_its
        self.near_nullspaces = near_nullspaces or {}
        self.on_iteration = on_iteration  # called before every iteration after the first (e.g. a stop check)
        self.lag_jacobian = lag_jacobian  # keep J while the merit falls by at least this factor per iteration
        self.carry_jacobian = carry_jacobian  # ... and into the next solve's first iteration
        self.jacobian_valid = False  # J (and its factors) usable by the next solve; the caller may reset it
        # block matrices (created from the sparsity of each block form; an
        # off-diagonal block whose form is empty still gets its pattern)
        self.A = [[fem_petsc.create_matrix(self.J[i][j]) if self.J[i][j] is not None else None
                   for j in range(self.n)] for i in range(self.n)]
        self.b = [fem_petsc.create_vector(self.F[i]) for i in range(self.n)]
        self.dx = [self.A[i][i].createVecRight() for i in range(self.n)]
        self.sens = [self.A[i][i].createVecRight() for i in range(self.n)]
        self.rhs = [fem_petsc.create_vector(self.F[i]) for i in range(self.n)]
        if self.n == 1:
            self.Amat, self.bvec, self.xvec = self.A[0][0], self.b[0], self.dx[0]
            self.svec, self.rvec = self.sens[0], self.rhs[0]
        else:
            self.Amat = PETSc.Mat().createNest(self.A, comm=comm)
            self.bvec = PETSc.Vec().createNest(self.b, comm=comm)
            self.xvec = PETSc.Vec().createNest(self.dx, comm=comm)
            self.svec = PETSc.Vec().createNest(self.sens, comm=comm)
            self.rvec = PETSc.Vec().createNest(self.rhs, comm=comm)
        for i, ns in self.near_nullspaces.items():
            self.A[i][i].setNearNullSpace(ns)
        # a direct solve of the whole block system when the overrides ask for a
        # factorisation (pc_type lu/cholesky): the MatNest is copied into one
        # AIJ matrix after each Jacobian assembly and factorised (MUMPS by default);
        # the copy (and the KSP's operator) is made at the first assembly
        self.direct = self.n > 1 and str((overrides or {}).get("pc_type", "")) in ("lu", "cholesky")
        self.Aflat = None
        self.options = set_options(prefix, DIRECT_OPTIONS if self.direct else options, overrides)
        self.ksp = PETSc.KSP().create(comm)
        self.ksp.setOptionsPrefix(prefix)
        if not self.direct:
            self.ksp.setOperators(self.Amat)
        pc = self.ksp.getPC()
        if self.n > 1 and not self.direct:
            pc.setType("fieldsplit")
            isets = self.Amat.getNestISs()[0]
            names = list(splits) if splits else [str(i) for i in range(self.n)]
            for i, ns in self.near_nullspaces.items():
                isets[i].compose("nearnullspace", ns)
            pc.setFieldSplitIS(*zip(names, isets))
        self.ksp.setFromOptions()
        self.g = fem_petsc.create_vector(border.g_form) if border is not None else None
        self._fb = None
        self._pc_fresh = False
        self._its_after_setup = None
        self.fallback_solves = 0
        self.stats = NewtonStats()
        self.total = NewtonStats()
        self.sensitivity_valid = False  # b is kept until the caller invalidates it (a new step)
        self.weights = [1.0] * self.n  # row scaling of block i by 1 / scale_i in the linear solves

    # ------------------------------------------------------------------
    def _x_vec(self, i):
        return self.U[i].x.petsc_vec

    def assemble_residual(self) -> list[float]:
        """b_i = F_i(U) with the Dirichlet rows set to U - g (lifting from U);
        returns the norm of each block."""
        with assembly():
            return self._assemble_residual()

    def _assemble_residual(self) -> list[float]:
        norms = []
        x0 = [self._x_vec(j) for j in range(self.n)]
        for i in range(self.n):
            b = self.b[i]
            with b.localForm() as loc:
                loc.set(0.0)
            fem_petsc.assemble_vector(b, self.F[i])
            fem_petsc.apply_lifting(b, self.J[i], bcs=self.bcs, x0=x0, alpha=-1.0)
            b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
            fem_petsc.set_bc(b, self.bcs[i], x0[i], -1.0)
            norms.append(b.norm())
        if self.n > 1:
            self.bvec.assemble()
        return norms

    def assemble_jacobian(self) -> None:
        with assembly():
            self._assemble_jacobian()
        if self.n > 1:  # equilibrate the blocks: row i divided by its residual scale
            for i in range(self.n):
                for j in range(self.n):
                    if self.A[i][j] is not None and self.weights[i] != 1.0:
                        self.A[i][j].scale(self.weights[i])
            self.Amat.assemble()
            if self.direct:  # values copied, refactorised at the next solve (a lagged J keeps its factors)
                first = self.Aflat is None
                self._aij()
                if first:
                    self.ksp.setOperators(self.Aflat)

    def _scale_rhs(self, vecs) -> None:
        if self.n > 1:
            for i in range(self.n):
                if self.weights[i] != 1.0:
                    vecs[i].scale(self.weights[i])

    def _assemble_jacobian(self) -> None:
        for i in range(self.n):
            for j in range(self.n):
                A = self.A[i][j]
                if A is None:
                    continue
                A.zeroEntries()
                if i == j:
                    fem_petsc.assemble_matrix(A, self.J[i][j], bcs=self.bcs[i])
                else:  # rows of block i's and columns of block j's Dirichlet dofs zeroed, no diagonal
                    fem_petsc.assemble_matrix(A, self.J[i][j], bcs=self.bcs[i] + self.bcs[j], diagonal=0.0)
                A.assemble()
        if self.n > 1:
            self.Amat.assemble()

    # ------------------------------------------------------------------
    def _linear_solve(self, rhs, sol, rtol: float | None) -> int:
        """Krylov solve at relative tolerance rtol (None: the options' ksp_rtol),
        with preconditioner reuse, one rebuild on failure, then a direct solve.
        Returns Krylov iterations."""
        if self.direct:
            return self._factorised_solve(rhs, sol)
        if rtol is not None:
            self.ksp.setTolerances(rtol=rtol)
        fresh = not (self.reuse and self._its_after_setup is not None)
        self.ksp.getPC().setReusePreconditioner(not fresh)
        if fresh:
            self.stats.pc_setups += 1
        self.ksp.solve(rhs, sol)
        its, reason = self.ksp.getIterationNumber(), self.ksp.getConvergedReason()
        total = its
        if reason < 0 and not fresh:  # the lagged preconditioner failed: rebuild once
            self.ksp.getPC().setReusePreconditioner(False)
            self.stats.pc_setups += 1
            fresh = True
            self.ksp.solve(rhs, sol)
            its, reason = self.ksp.getIterationNumber(), self.ksp.getConvergedReason()
            total += its
        if reason < 0:
            self._direct_solve(rhs, sol, reason, its)
            self._its_after_setup = None
            return total
        if fresh:
            self._its_after_setup = max(its, 1)
        elif its > max(self.reuse_min_its, self.reuse_growth * self._its_after_setup):
            self._its_after_setup = None  # rebuild at the next solve
        return total

    def _factorised_solve(self, rhs, sol) -> int:
        """The whole block system solved by the factorisation of Aflat (kept
        while the Jacobian is not reassembled). Returns 1 (one 'iteration')."""
        self._flat_solve(self.ksp, rhs, sol)
        reason = self.ksp.getConvergedReason()
        if reason < 0 or not np.isfinite(sol.norm()):
            raise SolveError(f"{self.name} direct solve failed (KSP reason {reason})")
        self.stats.direct_solves += 1
        return 1

    def _flat_solve(self, ksp, rhs, sol) -> None:
        """ksp (operator Aflat) applied to the nest vector rhs, result into the nest sol."""
        _nest_to_flat(rhs, self.rflat)
        ksp.solve(self.rflat, self.xflat)
        _flat_to_nest(self.xflat, sol)

    def _aij(self) -> PETSc.Mat:
        """The block Jacobian (MatNest) copied into one AIJ matrix: created at the
        first call, its values refreshed at every later one (same pattern).
        ``out=PETSc.Mat()`` matters: without ``out`` petsc4py converts the
        MatNest itself in place, and later assemblies into the blocks would no
        longer reach the matrix the solvers use."""
        if self.Aflat is None:
            self.Aflat = self.Amat.convert("aij", out=PETSc.Mat())
            self.rflat, self.xflat = self.Aflat.createVecLeft(), self.Aflat.createVecRight()
        else:
            self.Amat.convert("aij", out=self.Aflat)
        return self.Aflat

    def _direct_solve(self, rhs, sol, reason, its):
        if self._fb is None:
            self._fb = direct_ksp(self.prefix + "fallback_", self.comm)
        A = self._aij() if self.n > 1 else self.Amat
        self._fb.setOperators(A)
        if self.n > 1:
            self._flat_solve(self._fb, rhs, sol)
        else:
            self._fb.solve(rhs, sol)
        self.fallback_solves += 1
        self.stats.direct_solves += 1
        if self._fb.getConvergedReason() < 0 or not np.isfinite(sol.norm()):
            raise SolveError(f"{self.name} linear solve diverged (KSP reason {reason}, {its} iterations; direct "
                             f"fallback reason {self._fb.getConvergedReason()})")
        if self.fallback_solves in (1, 10, 100, 1000):
            logging.getLogger("nacrack").info(
                f"{self.name}: Krylov solve failed (reason {reason}, {its} iterations); direct fallback used "
                f"({self.fallback_solves} time(s) so far)")

    def _sensitivity(self) -> int:
        """b = dU/dV: J b = -J_(:,D) e on the free rows, b_D = e."""
        k = self.border.block
        for i in range(self.n):
            r = self.rhs[i]
            with r.localForm() as loc:
                loc.set(0.0)
        r = self.rhs[k]
        fem_petsc.apply_lifting(r, [self.J[k][k]], bcs=[self.border.bcs_unit])
        r.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        fem_petsc.set_bc(r, self.border.bcs_unit)
        self._scale_rhs(self.rhs)
        if self.n > 1:
            self.rvec.assemble()
        self.stats.sensitivity_solves += 1
        self.stats.linear_solves += 1
        return self._linear_solve(self.rvec, self.svec, rtol=None if self.forcing == "options" else 1e-6)

    def _assemble_g(self):
        with self.g.localForm() as loc:
            loc.set(0.0)
        fem_petsc.assemble_vector(self.g, self.border.g_form)
        self.g.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)

    def _eta(self, k: int, r: float, r_prev: float | None, eta_prev: float | None) -> float | None:
        if self.forcing == "options":
            return None
        if self.forcing != "eisenstat_walker" or r_prev is None or r_prev == 0.0:
            return self.eta_max
        gamma = 0.9
        eta = gamma * (r / r_prev) ** 2
        safe = gamma * eta_prev**2 if eta_prev is not None else 0.0
        if eta_prev is not None and safe > 0.1:
            eta = max(eta, safe)
        return float(min(self.eta_max, max(self.eta_min, eta)))

    # ------------------------------------------------------------------
    def solve(self, scales: Sequence, rtols: Sequence[float], update_test: Sequence[bool],
              lag_sensitivity: bool = True) -> NewtonStats:
        """Newton from the current U (and V). Block i is converged when
        |F_i| <= rtols[i] * scale_i, where scales[i] is a number, a callable
        evaluated at the current U (a load scale that moves with the state), or
        None: |F_i| at the first evaluation; or (update_test[i]) when its
        update is below rtol max(1, |U_i|_inf). Raises SolveError."""
        self.stats = st = NewtonStats()
        bd = self.border

        def constraint():
            # the galvanostatic residual G / I at the current U and V (0 unbordered)
            if bd is None or bd.scale is None:
                return 0.0
            size = bd.scale()
            return bd.residual() / size if size > 0.0 else 0.0

        r = self.assemble_residual()
        g_r = constraint()
        if not all(np.isfinite(r)):
            raise SolveError(f"{self.name} Newton: residual is not finite")
        first = [max(ri, 1e-300) for ri in r]
        st.first_residuals = list(r)

        def current_scales():
            out = []
            for s_, f_ in zip(scales, first):
                v = s_() if callable(s_) else s_
                out.append(float(v) if v is not None and v > 0.0 else f_)
            return out

        sc = current_scales()

        def merit(norms, g_rel):
            return float(np.sqrt(sum((ri / si) ** 2 for ri, si in zip(norms, sc)) + g_rel**2))

        def distance(norms, g_rel):
            # how far from converged: the largest residual over its tolerance (<= 1: converged);
            # the constraint counts when it has a scale
            d = max(ri / (rt * si) for ri, rt, si in zip(norms, rtols, sc))
            if bd is not None and bd.scale is not None:
                d = max(d, abs(g_rel) / rtols[bd.block])
            return d

        def converged(norms):
            # every block within its tolerance, and the constraint G / I within its block's rtol
            return distance(norms, g_r) <= 1.0

        st.residuals.append(merit(r, g_r))
        if (max(r) == 0.0 and g_r == 0.0) or (converged(r) and all(s_ is not None for s_ in scales)):
            return self._done(st)
        eta = None if self.forcing == "options" else self.eta_max
        dV_prev = None
        # a J carried from the last solve serves the first iteration (as after a fast one)
        carried = self.carry_jacobian and self.lag_jacobian > 0.0 and self.jacobian_valid
        last_ratio = 0.0 if carried else None
        self.jacobian_valid = False  # until this solve succeeds
        m_prev = None
        chord_too_slow = False
        for it in range(1, self.max_it + 1):
            if it > 1 and self.on_iteration is not None:
                self.on_iteration()
            if last_ratio is None or last_ratio > self.lag_jacobian or chord_too_slow:
                self.weights = [1.0 / si for si in sc]
                self.assemble_jacobian()
                st.jacobians += 1
            self._scale_rhs(self.b)
            m = merit(r, g_r)
            eta = self._eta(it, m, m_prev, eta)
            st.krylov_iterations += self._linear_solve(self.bvec, self.xvec, rtol=eta)
            st.linear_solves += 1
            self.xvec.scale(-1.0)
            dV = 0.0
            if bd is not None:
                if bd.g_depends_on_u or it == 1:
                    self._assemble_g()
                if not (self.sensitivity_valid and lag_sensitivity):
                    st.krylov_iterations += self._sensitivity()
                    self.sensitivity_valid = True
                k = bd.block
                gb = self.g.dot(self.sens[k])
                if gb == 0.0:
                    raise SolveError(f"{self.name} galvanostatic: no metal interface to carry the current")
                dV = -(bd.residual() + self.g.dot(self.dx[k])) / gb
                for i in range(self.n):
                    self.dx[i].axpy(dV, self.sens[i])
                # a lagged b is kept while the voltage corrections contract fast;
                # otherwise it is solved again at the next iteration
                if dV_prev is not None and abs(dV) > 0.5 * abs(dV_prev):
                    self.sensitivity_valid = False
                dV_prev = dV
            steps = [self.dx[i].norm(PETSc.NormType.NORM_INFINITY) for i in range(self.n)]
            if not all(np.isfinite(steps)):
                raise SolveError(f"{self.name} Newton: update is not finite")
            V0 = float(bd.voltage.value) if bd is not None else 0.0
            small = [update_test[i] and steps[i] <= self.rtol * max(1.0, self._x_vec(i).norm(PETSc.NormType.NORM_INFINITY))
                     for i in range(self.n)]
            # backtracking on the merit, full step first
            lam, done = 1.0, 0.0
            for k_ls in range(12):
                for i in range(self.n):
                    self._x_vec(i).axpy(lam - done, self.dx[i])
                    self.U[i].x.scatter_forward()
                done = lam
                if bd is not None:
                    bd.voltage.value = V0 + lam * dV
                r_new = self.assemble_residual()
                g_new = constraint()
                finite = all(np.isfinite(r_new)) and np.isfinite(g_new)
                # up to 1/32 while the merit grows; up to 1/2048 while the residual overflows
                # (a step through near-singular, damaged cells can push exp(f eta) past the float range)
                if finite and (merit(r_new, g_new) <= m or k_ls >= 5):
                    break
                lam *= 0.5
            m_prev, r, g_r = m, r_new, g_new
            last_ratio = merit(r, g_r) / m if m > 0.0 else 0.0
            sc = current_scales()  # a load scale that moves with the state (the deposit's eigenstrain)
            st.iterations = it
            # a chord on pace to run out of iterations is replaced by a Newton step
            dist = distance(r, g_r)
            chord_too_slow = (0.0 < last_ratio <= self.lag_jacobian and dist > 1.0
                              and it + np.log(dist) / -np.log(last_ratio) > self.max_it)
            if _DEBUG and self.comm.rank == 0:
                print(f"  {self.name} newton {it}: eta {eta or 0:.1e} ksp {self.ksp.getIterationNumber()} "
                      f"reason {self.ksp.getConvergedReason()} lambda {done:g} dV {dV:.3e} steps "
                      + " ".join(f"{s_:.2e}" for s_ in steps) + " scaled "
                      + " ".join(f"{ri / si:.2e}" for ri, si in zip(r, sc)) + f" G/I {g_r:.2e}", flush=True)
            st.residuals.append(merit(r, g_r))
            if not all(np.isfinite(r)):
                raise SolveError(f"{self.name} Newton: residual is not finite")
            dV_small = bd is None or abs(dV) <= self.rtol * max(1.0, abs(V0))
            ok = [ri <= rt * si or sm for ri, rt, si, sm in zip(r, rtols, sc, small)]
            if all(ok) and dV_small or dist <= 1.0:  # dist: converged(r), computed above
                self.jacobian_valid = last_ratio <= self.lag_jacobian
                return self._done(st)
        raise SolveError(f"{self.name} Newton did not converge in {self.max_it} iterations (scaled residuals "
                         + ", ".join(f"{ri / si:.2e}" for ri, si in zip(r, sc)) + ")")

    def _done(self, st: NewtonStats) -> NewtonStats:
        t = self.total
        t.iterations += st.iterations
        t.krylov_iterations += st.krylov_iterations
        t.linear_solves += st.linear_solves
        t.sensitivity_solves += st.sensitivity_solves
        t.pc_setups += st.pc_setups
        t.direct_solves += st.direct_solves
        t.jacobians += st.jacobians
        return st


def _jacobian_block(F: ufl.Form, u: fem.Function):
    """Compiled dF/du, or None when F does not depend on u (a zero block)."""
    from ufl.algorithms import expand_derivatives

    dF = expand_derivatives(ufl.derivative(F, u, ufl.TrialFunction(u.function_space)))
    return None if dF.empty() else fem.form(dF)


def _nest_to_flat(nest: PETSc.Vec, flat: PETSc.Vec) -> None:
    offset = 0
    arr = flat.getArray()
    for sub in nest.getNestSubVecs():
        n = sub.getLocalSize()
        arr[offset:offset + n] = sub.getArray(readonly=True)
        offset += n


def _flat_to_nest(flat: PETSc.Vec, nest: PETSc.Vec) -> None:
    offset = 0
    arr = flat.getArray(readonly=True)
    for sub in nest.getNestSubVecs():
        n = sub.getLocalSize()
        sub.getArray()[:] = arr[offset:offset + n]
        offset += n
