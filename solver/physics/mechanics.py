"""Mechanical equilibrium of electrolyte + Na deposit (docs/model.md#mechanics).

    div sigma = 0,   sigma = g(d) dpsi+/deps_e + dpsi-/deps_e,
    eps_e = sym grad u - eps*(xi),   eps* = (eps_v / 3) h(xi) I
        (h((xi - xi_e) / (1 - xi_e)) with mechanics.eigenstrain_onset xi_e > 0),
    C(xi, theta) = h(xi) C_Na + (1 - h(xi)) C_SE(theta)   (mechanics.stiffness_mixing: voigt;
        'reuss' mixes the compliances: 1/K = h/K_Na + (1-h)/K_SE, 1/G likewise),
    g(d) = (1 - k_res) (1 - d)^2 + k_res          (phase-field models; g(0) = 1
                                                   so an intact body has exactly C)
    C -> [1 - (1 - f) d] C, no split, g = 1        (damaged_domain, f = modulus_factor)

Plane strain in 2D (3x3 tensors with eps_zz = 0, so sigma_zz is carried),
3D if the mesh is 3D. Internal units: coordinates and u in um, stresses MPa,
energy density MPa (J/m^3 x 1e-6), energy per area J/m^2 = MPa um.

Loading (``loading.mechanical``): ``none`` (only the eigenstrain loads the
body) clamps ``fixed`` (default the plating electrode, u = 0; a stiff bonded
electrode); ``displacement`` prescribes u = value * direction on
``boundary`` and holds ``fixed``; ``pressure`` applies the traction -p n on
``boundary`` (p < 0 pulls). ``support: roller`` instead holds only the normal
component on ``fixed`` (plus one pinned point against the rigid translation)
and prescribes only the nonzero components of ``direction``.

The equation is nonlinear in u when a split is used (the tension/compression
switch), so it is solved by Newton's method; each Newton step is a symmetric
positive definite solve with CG + GAMG (rigid-body near-nullspace), prefix
``mechanics_`` (overrides: ``solver.petsc.mechanics``). With split ``none``
(or damaged_domain) it is linear: one step.

Use::

    mech = MechanicsProblem(domain, cfg, xi=xi, d=d)   # xi P1, d P1 or DG0 (caller's)
    its = mech.solve(t)["krylov_iterations"]  # SolveError on failure
    mech.residual_norm()                 # relative equilibrium residual (stagger tol_u)
    mech.pressure(), mech.stress(), mech.stress_undegraded(), mech.psi_plus()   # UFL, MPa
    mech.elastic_energy() [J/m], mech.reaction_force("counter_electrode") [N/m per component]
    mech.max_pressure() [Pa]; mech.derived_functions() / update_derived()     # DG0 fields in Pa
    mech.save_state() / restore_state(); mech.dofs(); mech.add_dirichlet(tag, comp, value)
"""

from __future__ import annotations

import numpy as np
import ufl
from dolfinx import fem, la
from dolfinx import mesh as dmesh
from dolfinx.fem import petsc as fem_petsc
from mpi4py import MPI
from petsc4py import PETSc

from .. import scales
from ..config import schedule_value
from ..mesh.domain import FACET_TAGS, Domain, num_local_cells
from ..numerics.linalg import LinearSolver, SolveError
from ..numerics.petsc_defaults import MECHANICS_PETSC
from .elasticity import (
    EnergySplit,
    Stiffness,
    electrolyte_constants,
    embed_vec3,
    h_interp,
    inplane,
    plane_tractions,
    sodium_constants,
    strain3,
    von_mises,
)
from .phases import make_damage_function

# CG + GAMG (rigid-body near-nullspace) with SOR smoothing: numerics/petsc_defaults.py

# Quadrature degree of the mechanics forms: 2 with P1 displacements (3 points;
# the strain is cellwise constant), the electrochemistry residual's degree
# (4, 6 points) with P2: there the stress varies within the cell, and the
# stress-coupled kinetics read it at their own quadrature points, which a
# 3-point rule leaves outside the equilibrium it enforces (see
# MechanicsProblem.__init__).
QUADRATURE_DEGREE = 2


def quadrature_degree(displacement_degree: int) -> int:
    """The mechanics quadrature degree for P1 (2) or P2 (that of the electrochemistry residual)."""
    from .electrochemistry import QUADRATURE_DEGREE as EC_DEGREE

    return QUADRATURE_DEGREE if displacement_degree == 1 else max(QUADRATURE_DEGREE, EC_DEGREE)
# energy [MPa um^tdim] -> SI (J/m in 2D, J in 3D)
ENERGY_SI = {2: scales.STRESS * scales.LENGTH**2, 3: scales.STRESS * scales.LENGTH**3}
# force [MPa um^(tdim-1)] -> SI (N/m in 2D, N in 3D)
FORCE_SI = {2: scales.STRESS * scales.LENGTH, 3: scales.STRESS * scales.LENGTH**2}


def rigid_body_modes(V: fem.FunctionSpace):
    """Orthonormalised rigid-body modes of a blocked P1 vector space (GAMG
    near-nullspace): translations and in-plane (2D) / three (3D) rotations.
    Returns (PETSc NullSpace, the la.Vectors it wraps: keep them alive)."""
    imap, bs = V.dofmap.index_map, V.dofmap.index_map_bs
    x = V.tabulate_dof_coordinates()
    xc = x - V.mesh.comm.allreduce(x[: imap.size_local].sum(axis=0), op=MPI.SUM) / max(
        1, V.mesh.comm.allreduce(imap.size_local, op=MPI.SUM)
    )
    nmodes = 3 if bs == 2 else 6
    basis = [la.vector(imap, bs=bs, dtype=PETSc.ScalarType) for _ in range(nmodes)]
    b = [v.array for v in basis]
    for k in range(bs):
        b[k][k::bs] = 1.0
    if bs == 2:
        b[2][0::bs], b[2][1::bs] = -xc[:, 1], xc[:, 0]
    else:
        b[3][0::bs], b[3][1::bs] = -xc[:, 1], xc[:, 0]
        b[4][1::bs], b[4][2::bs] = -xc[:, 2], xc[:, 1]
        b[5][2::bs], b[5][0::bs] = -xc[:, 0], xc[:, 2]
    la.orthonormalize(basis)
    ns = PETSc.NullSpace().create(vectors=[v.petsc_vec for v in basis], comm=V.mesh.comm)
    return ns, basis


def cell_expression_values(expr, msh, shape=()) -> np.ndarray:
    """Values of a UFL expression at each local cell midpoint (owned + ghost),
    shape (ncells, *shape): interpolation into DG0."""
    Q = fem.functionspace(msh, ("DG", 0, shape) if shape else ("DG", 0))
    f = fem.Function(Q)
    f.interpolate(fem.Expression(expr, Q.element.interpolation_points()))
    ncell = num_local_cells(msh)
    bs = int(np.prod(shape)) if shape else 1
    dofs = Q.dofmap.list[:ncell, 0]
    arr = f.x.array.reshape(-1, bs)[dofs]
    return arr.reshape((ncell, *shape)) if shape else arr[:, 0]


class CellEvaluator:
    """Reusable interpolation of a UFL expression into DG0 (cell midpoints)."""

    def __init__(self, expr, msh, shape=()):
        self.shape = shape
        self.Q = fem.functionspace(msh, ("DG", 0, shape) if shape else ("DG", 0))
        self.f = fem.Function(self.Q)
        self.expr = fem.Expression(expr, self.Q.element.interpolation_points())
        self.ncell = num_local_cells(msh)
        self.dofs = self.Q.dofmap.list[: self.ncell, 0]
        self.bs = int(np.prod(shape)) if shape else 1

    def __call__(self) -> np.ndarray:
        self.f.interpolate(self.expr)
        arr = self.f.x.array.reshape(-1, self.bs)[self.dofs]
        return arr.reshape((self.ncell, *self.shape)) if self.shape else arr[:, 0]


def _axis_of_boundary(msh, facets) -> int:
    """Coordinate axis normal to a flat, axis-aligned boundary (0 x, 1 y, 2 z)."""
    tdim = msh.topology.dim
    mid = dmesh.compute_midpoints(msh, tdim - 1, facets)[:, :tdim] if len(facets) else np.zeros((0, tdim))
    lo = mid.min(axis=0) if len(mid) else np.full(tdim, np.inf)
    hi = mid.max(axis=0) if len(mid) else np.full(tdim, -np.inf)
    lo, hi = np.ascontiguousarray(lo, dtype=float), np.ascontiguousarray(hi, dtype=float)
    msh.comm.Allreduce(MPI.IN_PLACE, lo, op=MPI.MIN)
    msh.comm.Allreduce(MPI.IN_PLACE, hi, op=MPI.MAX)
    return int(np.argmin(hi - lo))


class MechanicsProblem:
    """Displacement u [um] of the electrolyte + deposit.

    ``xi`` (Na phase, P1) and ``d`` (damage, P1 or DG0) are Functions owned by
    the caller, read live by the forms; None creates zero fields (``.xi``,
    ``.d``; d via :func:`make_damage_function`).
    """

    def __init__(self, domain: Domain, cfg, xi: fem.Function | None = None, d: fem.Function | None = None):
        self.domain, self.cfg = domain, cfg
        msh = domain.mesh
        self.comm = msh.comm
        self.tdim = tdim = msh.topology.dim
        self.V = fem.functionspace(msh, ("Lagrange", cfg.mechanics.displacement_degree, (tdim,)))
        self.u = fem.Function(self.V, name="displacement")
        self.du = fem.Function(self.V)
        self._u1 = None  # P1 copy of u for output (u_output) when u is P2
        S = fem.functionspace(msh, ("Lagrange", 1))
        self.xi = xi if xi is not None else fem.Function(S, name="metal")
        self.d = d if d is not None else make_damage_function(domain, cfg)
        mech, frac = cfg.mechanics, cfg.fracture
        self.damaged_domain = bool(frac.enabled and frac.model == "damaged_domain")

        # --- constitutive law (3x3 tensors) ---
        xi_c = ufl.max_value(ufl.min_value(self.xi, 1.0), 0.0)
        self.h = h_interp(xi_c)
        m = domain.plane_normal()
        if m is None:  # 3D mesh without c-axes: any axis (only used by anisotropic C and outputs)
            m = fem.Constant(msh, np.array([0.0, 0.0, 1.0]))
        self.m3 = embed_vec3(m, tdim)
        se = electrolyte_constants(cfg.materials.electrolyte)
        na = sodium_constants(cfg.materials.sodium)
        if self.damaged_domain:
            f = frac.damaged_domain.modulus_factor
            C = Stiffness(se, na, self.h, self.m3, factor=1.0 - (1.0 - fem.Constant(msh, f)) * self.d, msh=msh,
                          mixing=mech.stiffness_mixing)
            split, self.g = "none", 1.0
        else:
            C = Stiffness(se, na, self.h, self.m3, msh=msh, mixing=mech.stiffness_mixing)
            split = mech.split
            self.k_res = fem.Constant(msh, PETSc.ScalarType(mech.residual_stiffness))
            self.g = (1.0 - self.k_res) * (1.0 - self.d) ** 2 + self.k_res
        self.C = C
        self.split_kind = split
        self.eps_v = fem.Constant(msh, PETSc.ScalarType(mech.eigenstrain))
        eye = ufl.Identity(3)
        # Metal present at the start (electrode layers, Na-filled flaws) is the
        # stress-free reference: only Na deposited since then expands,
        # eps* = eps_v/3 (h(xi) - h(xi_0)) I.
        self.xi_ref = fem.Function(S, name="metal_reference")
        self.xi_ref.x.array[:] = self.xi.x.array
        # eigenstrain onset xi_e: h_e(xi) = h((xi - xi_e) / (1 - xi_e)), clipped to [0, 1]
        xi_e = mech.eigenstrain_onset

        def h_e(x):
            return h_interp(ufl.max_value(ufl.min_value((x - xi_e) / (1.0 - xi_e), 1.0), 0.0))

        self.h_ref = h_e(self.xi_ref)
        self.eps_star = self.eps_v / 3.0 * (h_e(self.xi) - self.h_ref) * eye
        self.eps_e = strain3(self.u, tdim) - self.eps_star
        psi_p, psi_m, s_p, s_m = EnergySplit(split, C, tdim).parts(self.eps_e)
        self._psi_p, self._psi_m = psi_p, psi_m
        self._sigma = self.g * s_p + s_m
        self._sigma0 = s_p + s_m
        self.linear = split == "none"

        # --- loading and supports ---
        dx, ds, _ = domain.measures()
        # h(xi), the conditionals of the split and the sqrt of the spectral
        # split inflate UFL's degree estimate (up to ~10, dozens of points per
        # cell); with P1 u the strain is cellwise constant, so a fixed
        # 3-point rule (degree 2) integrates the h(xi) variation well enough.
        # With P2 u the rule is that of the electrochemistry residual
        # (quadrature_degree above): with 3 points the equilibrium held at
        # other points than those where the kinetics read the stress, and the
        # coupled Newton on a Na pocket (tests/test_coupled.py POCKET) stalled
        # at a scaled residual ~1e-2 although its Jacobian is exact
        # (tests/test_monolithic.py)
        dx = dx(metadata={"quadrature_degree": quadrature_degree(cfg.mechanics.displacement_degree)})
        self.dx, self.ds = dx, ds
        self.load = cfg.loading.mechanical
        self.load_value = fem.Constant(msh, PETSc.ScalarType(0.0))  # um or MPa
        v = ufl.TestFunction(self.V)
        self.bcs, self.bcs0 = self._boundary_conditions()
        self._eps_v_test = ufl.sym(ufl.grad(v))
        F_int = ufl.inner(inplane(self._sigma, tdim), self._eps_v_test) * dx
        F_ext = 0
        if self.load.type == "pressure":
            n = ufl.FacetNormal(msh)
            tag = self._tag(self.load.boundary)
            F_ext = -self.load_value * ufl.dot(n, v) * ds(tag)
        self.F = F_int - F_ext if F_ext != 0 else F_int
        self._F_form = fem.form(self.F)
        self._Fint_form = fem.form(F_int)
        J = ufl.derivative(self.F, self.u, ufl.TrialFunction(self.V))
        self.nullspace, self._rbm = rigid_body_modes(self.V)
        overrides = cfg.solver.petsc.get("mechanics")
        self.solver = LinearSolver(J, -self.F, self.bcs0, "mechanics_", self.comm, defaults=MECHANICS_PETSC,
                                   overrides=overrides, near_nullspace=self.nullspace,
                                   direct_fallback="sticky")
        self.newton_rtol = mech.newton_rtol
        self.max_newton = mech.max_newton_iterations
        self.newton_iterations = 0
        self.krylov_iterations = 0
        self.stalled_solves = 0
        self._energy_form = fem.form((self.g * psi_p + psi_m) * dx)
        self._R = fem_petsc.create_vector(self._F_form)
        self._derived = None
        self._saved = None

    # ------------------------------------------------------------------
    def _tag(self, name: str) -> int:
        if name not in FACET_TAGS:
            raise ValueError(f"unknown boundary {name!r}; expected one of {', '.join(FACET_TAGS)}")
        return FACET_TAGS[name]

    def _boundary_conditions(self):
        """(bcs with values, homogeneous copies for the Newton correction)."""
        msh, V, tdim = self.domain.mesh, self.V, self.tdim
        ft = self.domain.facet_tags
        load = self.load
        fixed = ft.find(self._tag(load.fixed))
        bcs, bcs0 = [], []
        zero = PETSc.ScalarType(0.0)

        def add(dofs, sub, value):
            space = V.sub(sub) if sub is not None else V
            if sub is None:
                bcs.append(fem.dirichletbc(value, dofs, V))
                bcs0.append(fem.dirichletbc(np.zeros(tdim, dtype=PETSc.ScalarType), dofs, V))
            else:
                bcs.append(fem.dirichletbc(value, dofs, space))
                bcs0.append(fem.dirichletbc(zero, dofs, space))

        if load.support == "clamped":
            add(fem.locate_dofs_topological(V, tdim - 1, fixed), None, np.zeros(tdim, dtype=PETSc.ScalarType))
        else:
            k = _axis_of_boundary(msh, fixed)
            add(fem.locate_dofs_topological(V.sub(k), tdim - 1, fixed), k, zero)
            # rigid motions left by the roller: pin the vertex A of 'fixed' with
            # the smallest coordinates in every tangential component; in 3D
            # also the vertex B farthest from A along the first tangent axis
            # in the second tangential component (the rotation about the normal)
            msh.topology.create_connectivity(tdim - 1, 0)
            msh.topology.create_connectivity(0, tdim)
            verts = dmesh.compute_incident_entities(msh.topology, fixed, tdim - 1, 0)
            geo = dmesh.entities_to_geometry(msh, 0, verts).reshape(-1) if len(verts) else np.zeros(0, np.int32)
            keys = msh.geometry.x[geo, :tdim] if len(verts) else np.zeros((0, tdim))
            tang = [j for j in range(tdim) if j != k]

            def vertex_where(score):
                """Local vertices at the global lexicographic minimum of score(keys)."""
                best = None
                if len(verts):
                    sc = score(keys)
                    best = tuple(sc[np.lexsort(sc.T[::-1])[0]])
                cand = [b for b in self.comm.allgather(best) if b is not None]
                target = np.array(min(cand))
                if not len(verts):
                    return verts
                sc = score(keys)
                return verts[np.all(np.abs(sc - target) < 1e-12 * max(1.0, np.abs(target).max()), axis=1)]

            pinA = vertex_where(lambda c: c)
            for j in tang:
                add(fem.locate_dofs_topological(V.sub(j), 0, pinA), j, zero)
            if tdim == 3:
                t1, t2 = tang
                pinB = vertex_where(lambda c: np.stack([-c[:, t1], c[:, t2], c[:, k]], axis=1))
                add(fem.locate_dofs_topological(V.sub(t2), 0, pinB), t2, zero)
        if load.type == "displacement":
            direction = np.zeros(tdim)
            dvec = np.asarray(load.direction, dtype=float)
            direction[: min(tdim, len(dvec))] = dvec[:tdim]
            facets = ft.find(self._tag(load.boundary))
            self._disp_consts = []
            for j in range(tdim):
                if direction[j] != 0.0 or load.support == "clamped":
                    c = fem.Constant(msh, PETSc.ScalarType(0.0))
                    self._disp_consts.append((c, direction[j]))
                    add(fem.locate_dofs_topological(V.sub(j), tdim - 1, facets), j, c)
        return bcs, bcs0

    def add_dirichlet(self, tag_name: str, component: int, value: float = 0.0) -> None:
        """Hold one displacement component [um] on a tagged boundary, in
        addition to the loading section (e.g. u_y = 0 on the sides in Miehe's
        shear test). Call before solve()."""
        facets = self.domain.facet_tags.find(self._tag(tag_name))
        Vj = self.V.sub(component)
        dofs = fem.locate_dofs_topological(Vj, self.tdim - 1, facets)
        bc = fem.dirichletbc(PETSc.ScalarType(value), dofs, Vj)
        bc0 = fem.dirichletbc(PETSc.ScalarType(0.0), dofs, Vj)
        self.bcs.append(bc)
        self.bcs0.append(bc0)
        self.solver.bcs.append(bc0)

    def set_load(self, t: float) -> float:
        """Set the load of the schedule at time t [s]; returns it in SI (m or Pa)."""
        val = schedule_value(self.load.value, t) if self.load.type != "none" else 0.0
        if self.load.type == "displacement":
            for c, comp in self._disp_consts:
                c.value = scales.length(val) * comp
        elif self.load.type == "pressure":
            self.load_value.value = scales.stress(val)
        return val

    # ------------------------------------------------------------------
    def solve(self, t: float = 0.0, dt: float = 0.0) -> dict:
        """Equilibrium at time t [s] with the current xi, d (Newton; each step
        one CG + GAMG solve); quasi-static, so dt plays no part. Returns
        {"newton_iterations", "krylov_iterations"}; raises SolveError."""
        self.set_load(t)
        for bc in self.bcs:
            bc.set(self.u.x.array)
        self.u.x.scatter_forward()
        its = 0
        r0 = None if self.linear else self._free_residual_norm()
        for k in range(self.max_newton):
            its += self.solver.solve(self.du)
            self.u.x.array[:] += self.du.x.array
            self.u.x.scatter_forward()
            if self.linear:
                break
            # The tension/compression split makes the energy convex but only
            # piecewise quadratic: a full Newton step can overshoot and cycle
            # when many cells change the sign of tr(eps) at once. Line search
            # along du for the minimum of the energy, i.e. the root of the
            # directional derivative phi'(lam) = R(u + lam du) . du (increasing
            # in lam by convexity, phi'(0) < 0), by regula falsi on [0, 1].
            g1 = self._directional_derivative()
            g0 = self._directional_derivative(shift=-1.0) if g1 > 0.0 else -1.0
            if g1 > 1e-3 * abs(g0):
                lo, hi, glo, ghi, lam = 0.0, 1.0, g0, g1, 1.0
                for _ in range(12):
                    new = hi - ghi * (hi - lo) / (ghi - glo) if ghi != glo else 0.5 * (lo + hi)
                    new = min(max(new, lo + 0.01 * (hi - lo)), hi - 0.01 * (hi - lo))
                    gn = self._directional_derivative(shift=new - 1.0)
                    if gn > 0.0:
                        hi, ghi = new, gn
                        glo *= 0.5 if glo < 0 else 1.0  # Illinois: avoid a stuck end point
                    else:
                        lo, glo = new, gn
                        ghi *= 0.5
                    lam = new
                    if abs(gn) <= 1e-3 * abs(g0):
                        break
                self.u.x.array[:] += (lam - 1.0) * self.du.x.array
                self.u.x.scatter_forward()
            r_new = self._free_residual_norm()
            # converged: residual reduced by newton_rtol from this solve's
            # start, or small relative to the load scale
            if r_new <= self.newton_rtol * r0 or self.residual_norm() < self.newton_rtol:
                break
        else:
            res = self.residual_norm()
            accept = self.cfg.mechanics.newton_accept_residual
            if accept is None or not res <= accept:
                raise SolveError(f"mechanics Newton did not converge in {self.max_newton} iterations "
                                 f"(relative residual {res:.3e})")
            self.stalled_solves += 1
            if self.stalled_solves in (1, 10, 100, 1000, 10000) and self.comm.rank == 0:
                import logging

                logging.getLogger("nacrack").info(
                    f"mechanics Newton stalled at relative residual {res:.2e} after {self.max_newton} iterations; "
                    f"accepted (mechanics.newton_accept_residual = {accept:g}; {self.stalled_solves} time(s) so far)")
        self.newton_iterations = k + 1
        self.krylov_iterations = its
        return {"newton_iterations": self.newton_iterations, "krylov_iterations": its}

    def _assemble_residual(self, form):
        R = self._R
        with R.localForm() as loc:
            loc.set(0.0)
        fem_petsc.assemble_vector(R, form)
        R.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        return R

    def _directional_derivative(self, shift: float = 0.0) -> float:
        """R(u + shift du) . du on the free dofs (u is restored afterwards)."""
        if shift:
            self.u.x.array[:] += shift * self.du.x.array
            self.u.x.scatter_forward()
        R = self._assemble_residual(self._F_form)
        fem_petsc.set_bc(R, self.bcs0)
        val = R.dot(self.du.x.petsc_vec)
        if shift:
            self.u.x.array[:] -= shift * self.du.x.array
            self.u.x.scatter_forward()
        return val

    def _free_residual_norm(self) -> float:
        R = self._assemble_residual(self._F_form)
        fem_petsc.set_bc(R, self.bcs0)
        return R.norm()

    def residual_norm(self) -> float:
        """Relative residual of the equilibrium equation with the current u,
        xi, d: ||R(u)|| on the free dofs divided by :meth:`load_scale`."""
        R = self._assemble_residual(self._F_form)
        fem_petsc.set_bc(R, self.bcs0)
        r = R.norm()
        return r / self.load_scale()

    def force_scale(self) -> float:
        """A force scale that does not contain the residual itself (for Newton's
        merit): max(||f_int(u)||, ||R(0)||) over all dofs, floored by the force
        of a strain 1e-12 in the electrolyte over the domain (an unloaded,
        stress-free state has no other scale)."""
        scale = self._assemble_residual(self._Fint_form).norm()
        saved = self.u.x.array.copy()
        self.u.x.array[:] = 0.0
        scale = max(scale, self._assemble_residual(self._F_form).norm())
        self.u.x.array[:] = saved
        size = max(self.domain.width, self.domain.height)
        floor = 1e-12 * float(electrolyte_constants(self.cfg.materials.electrolyte).bulk()) * size ** (self.tdim - 1)
        return max(scale, floor)

    def load_scale(self) -> float:
        """The force scale of the current state: max(||R(u)||, ||f_int(u)||,
        ||R(0)||) over all dofs (reactions, the internal forces, and the
        eigenstrain + traction load at u = 0, so a stress-free equilibrium
        still has a scale), floored as :meth:`force_scale`."""
        return max(self._assemble_residual(self._F_form).norm(), self.force_scale())

    # ------------------------------------------------------------------
    def stress(self):
        """Degraded Cauchy stress, UFL 3x3 [MPa] (sigma_zz included in 2D)."""
        return self._sigma

    def stress_undegraded(self):
        """sigma~ = dpsi+/deps + dpsi-/deps, UFL 3x3 [MPa] (no damage)."""
        return self._sigma0

    def pressure(self):
        """Hydrostatic pressure p = -tr(sigma)/3, UFL [MPa] (compression > 0;
        the 3D trace, i.e. with sigma_zz in plane strain)."""
        return -ufl.tr(self._sigma) / 3.0

    def interface_pressure(self, width: float):
        """Normal traction on the deposit interface, UFL [MPa] (compression > 0):

            p_n = max(0, w (-n.sigma.n) + (1 - w) (-tr(sigma)/3)),  n = grad xi / |grad xi|,
            w = |grad xi|^2 / (|grad xi|^2 + (0.1/delta)^2)

        n.sigma.n is continuous across an interface (traction continuity),
        -tr(sigma)/3 is not: around a pressurised Na pocket the ceramic's mean
        stress is ~0 while the metal is at p. Creeping Na (yield ~0.2 MPa)
        and its interface carry no tension, so p_n >= 0: without the bound a
        one-cell metal needle, in tension at its tip, plates ever faster along
        a mesh diagonal. ``width`` = delta [um]."""
        g = ufl.grad(self.xi)
        g2 = ufl.dot(g, g)
        g0 = 0.1 / width
        n = g / ufl.sqrt(g2 + 1e-30 * g0**2)
        s_nn = ufl.dot(n, ufl.dot(inplane(self._sigma, self.tdim), n))
        w = g2 / (g2 + g0**2)
        return ufl.max_value(-w * s_nn + (1.0 - w) * self.pressure(), 0.0)

    def psi_plus(self):
        """Tensile strain energy density psi+ (undegraded), UFL [MPa]."""
        return self._psi_p

    def psi_minus(self):
        return self._psi_m

    def elastic_energy(self) -> float:
        """int (g psi+ + psi-) dx in SI: J/m (2D, per metre of depth) or J (3D)."""
        e = self.comm.allreduce(fem.assemble_scalar(self._energy_form), op=MPI.SUM)
        return float(e * ENERGY_SI[self.tdim])

    def reaction_force(self, tag_name: str) -> np.ndarray:
        """Resultant traction int sigma.n ds on the tagged boundary, from the
        internal-force vector at its dofs (exact for Dirichlet boundaries).
        SI: N/m in 2D (per metre of depth), N in 3D; one entry per component."""
        facets = self.domain.facet_tags.find(self._tag(tag_name))
        dofs = fem.locate_dofs_topological(self.V, self.tdim - 1, facets)
        R = self._assemble_residual(self._Fint_form)
        bs = self.tdim
        nown = self.V.dofmap.index_map.size_local
        dofs = dofs[dofs < nown]
        arr = R.getArray(readonly=True).reshape(-1, bs)
        local = arr[dofs].sum(axis=0) if len(dofs) else np.zeros(bs)
        return self.comm.allreduce(local, op=MPI.SUM) * FORCE_SI[self.tdim]

    # ------------------------------------------------------------------
    def cell_stress(self, undegraded: bool = False) -> np.ndarray:
        """Stress at the cell midpoints [MPa], array (ncells_local, 3, 3)."""
        key = "_ev_s0" if undegraded else "_ev_s"
        if not hasattr(self, key):
            setattr(self, key, CellEvaluator(self._sigma0 if undegraded else self._sigma, self.domain.mesh, (3, 3)))
        return getattr(self, key)()

    def cell_psi_plus(self) -> np.ndarray:
        """psi+ at the cell midpoints [MPa], array (ncells_local,)."""
        if not hasattr(self, "_ev_psi"):
            self._ev_psi = CellEvaluator(self._psi_p, self.domain.mesh)
        return self._ev_psi()

    def cell_plane_normal(self) -> np.ndarray:
        """c-axis m per cell (ncells_local, 3)."""
        if not hasattr(self, "_m_cells"):
            self._m_cells = cell_expression_values(self.m3, self.domain.mesh, (3,))
        return self._m_cells

    def cell_metal_fraction(self) -> np.ndarray:
        """h(xi) at the cell midpoints."""
        if not hasattr(self, "_ev_h"):
            self._ev_h = CellEvaluator(self.h, self.domain.mesh)
        return self._ev_h()

    DERIVED = (
        ("hydrostatic_pressure", "p = -tr(sigma)/3 [Pa], compression positive"),
        ("von_mises_stress", "sqrt(3/2 s:s) [Pa]"),
        ("max_principal_stress", "largest principal stress (with sigma_zz) [Pa]"),
        ("plane_normal_traction", "m.sigma.m on the grain's conduction plane [Pa]"),
        ("plane_shear_traction", "|sigma m - (m.sigma.m) m| on the conduction plane [Pa]"),
    )

    def derived_functions(self) -> list[fem.Function]:
        """DG0 output fields (all in Pa, SI), filled by :meth:`update_derived`:
        hydrostatic_pressure, von_mises_stress, max_principal_stress,
        plane_normal_traction, plane_shear_traction (degraded stress)."""
        if self._derived is None:
            Q = fem.functionspace(self.domain.mesh, ("DG", 0))
            self._derived = [fem.Function(Q, name=n) for n, _ in self.DERIVED]
            self.update_derived()
        return self._derived

    def update_derived(self) -> None:
        if self._derived is None:
            self.derived_functions()
            return
        sig = self.cell_stress()
        m = self.cell_plane_normal()
        tn, ts = plane_tractions(sig, m)
        vals = [
            -np.trace(sig, axis1=1, axis2=2) / 3.0,
            von_mises(sig),
            np.linalg.eigvalsh(sig)[:, -1],
            tn,
            ts,
        ]
        for f, v in zip(self._derived, vals):
            Q = f.function_space
            dofs = Q.dofmap.list[: len(v), 0]
            f.x.array[dofs] = v * scales.STRESS
            f.x.scatter_forward()

    def u_output(self) -> fem.Function:
        """u for fields.xdmf: itself when P1, else its vertex interpolant [um]."""
        if self.V.ufl_element().degree == 1:
            return self.u
        if self._u1 is None:
            V1 = fem.functionspace(self.domain.mesh, ("Lagrange", 1, (self.tdim,)))
            self._u1 = fem.Function(V1, name="displacement")
        self._u1.interpolate(self.u)
        return self._u1

    def max_pressure(self) -> float:
        """Largest cell-midpoint hydrostatic pressure [Pa] (for scalars.csv)."""
        sig = self.cell_stress()
        nown = self.domain.mesh.topology.index_map(self.tdim).size_local
        p = -np.trace(sig[:nown], axis1=1, axis2=2) / 3.0
        local = p.max() if len(p) else -np.inf
        return float(self.comm.allreduce(local, op=MPI.MAX) * scales.STRESS)

    # ------------------------------------------------------------------
    def save_state(self) -> None:
        self._saved = self.u.x.array.copy()

    def restore_state(self) -> None:
        if self._saved is not None:
            self.u.x.array[:] = self._saved
            self.u.x.scatter_forward()

    def commit(self) -> None:
        """Quasi-static: nothing carries over from one step to the next."""

    def checkpoint_functions(self) -> dict:
        return {"u": self.u}

    def checkpoint_state(self) -> dict:
        return {}

    def load_checkpoint_state(self, state: dict) -> None:
        self.u.x.scatter_forward()

    def scalars(self, t: float) -> dict:
        return {"elastic_energy_J_m": self.elastic_energy()}

    def output_functions(self) -> list[fem.Function]:
        """[u (P1, um), stress-derived DG0 fields]."""
        self.update_derived()
        return [self.u_output(), *self.derived_functions()]

    def dofs(self) -> int:
        return self.domain.num_dofs(self.V)
