"""Phase-field fracture: one damage equation, three driving forces
(docs/model.md#fracture).

Phase-field models (``energy``, ``stress``), d in P1:

    (1 + H) d - l^2 div(B grad d) = H,   H(x, t) = max_{s<=t} Dtilde(x, s),
    B = I + beta_c (I - m m)   (= I + beta_c a a in 2D)

- ``energy`` (Miehe 2010):  Dtilde = 2 l psi+ / Gc, Gc = K_IC^2 (1-nu^2)/E
  unless given.
- ``stress`` (Miehe, Schaenzel, Ulmer 2015, anisotropic strength), with the
  undegraded stress sigma~ (3x3, sigma_zz included in plane strain):
    D_cp = < (<t_n>/sigma_cp)^2 + (t_s/tau_cp)^2 - 1 >   on the conduction plane (normal m)
    D_b  = < sum_k (<sigma_k>/sigma_b)^2 - 1 >           principal stresses sigma_k
    D_gb = < (<t_n>/sigma_gb)^2 + (t_s/sigma_gb)^2 - 1 > on the grain-boundary facets of
           cells in the GB band (facet normal n_gb; max over the cell's GB facets)
    Dtilde = zeta max(D_cp, D_b, D_gb)
- Only the electrolyte breaks: in both models Dtilde is multiplied by
  1 - h(xi) (h(xi) at the cell midpoint), so Na metal never drives damage.
- ``damaged_domain`` (Geng 2023 macroscale): d is DG0; a cell whose maximum
  principal stress sigma_1 (direction n_1) reaches
      sigma_m0 = [ (n_1.m)^2 / s0 + (1 - (n_1.m)^2) / (r s0) ]^-1
  (s0 = ``threshold``: stress opening the conduction planes; r =
  ``threshold_ratio``: across them it takes r s0) gets d = 1 for good. The
  mechanics then scales its stiffness by ``modulus_factor`` there. With
  ``cells_per_iteration`` = N > 0 only the N intact cells with the largest
  current sigma_1 / sigma_m0 (>= 1) break per update, as in a lattice model
  that breaks its most overloaded bonds and re-solves.

The history H is a DG0 field evaluated at cell midpoints: with P1
displacements the strain, hence psi+ and every stress criterion, is constant
per cell (exactly so where xi is uniform), so DG0 holds the max-history
without interpolation error, is trivially monotone, and the damage forms
are integrated exactly. Irreversibility: H never decreases, and after each
solve d <- min(1, max(d_new, d_before)) so d never heals.

Crack paths: the strength anisotropy (sigma_cp << sigma_b) sets where and
when damage starts, but ahead of a mode-I tip the stress is nearly
equibiaxial, so with B = I the crack still runs almost straight (~12 deg off
the notch for planes at 30 deg); the structural tensor (beta_c ~ 10, the
anisotropic crack-surface energy of cleavage planes) makes it follow the
planes (28.6 deg). See tests/test_fracture.py::test_f5_*.

Use (the coupled driver's order: mechanics, then)::

    frac = FractureProblem(domain, cfg, mech)   # frac.d is mech.d
    frac.update_history(); its = frac.solve()["krylov_iterations"]
    frac.crack_length() [m], frac.fracture_energy() [J/m], frac.crack_tip() [m]
    frac.save_state() / frac.restore_state()    # d and H, for cut-backs
    frac.add_crack_dofs(dofs)                   # optional initial crack, d = 1

Linear solver: CG + GAMG, options prefix ``fracture_`` (overrides:
``solver.petsc.fracture``).
"""

from __future__ import annotations

import numpy as np
import ufl
from mpi4py import MPI
from petsc4py import PETSc

from dolfinx import fem
from dolfinx import mesh as dmesh

from .. import scales
from ..mesh.domain import (
    COUNTER_ELECTRODE,
    FLAW,
    GRAIN_BOUNDARY,
    OUTER,
    PLATING_ELECTRODE,
    Domain,
    box_boundary_facets,
    dg0_from_cell_values,
    make_facet_tags,
    num_local_cells,
)
from ..numerics.linalg import LinearSolver
from .mechanics import MechanicsProblem
from .phases import make_damage_function  # noqa: F401  (re-export)

AREA_SI = scales.LENGTH  # crack length: um -> m


def critical_energy_release_rate(cfg) -> float:
    """Gc [J/m^2 = MPa um]: given, or K_IC^2 (1 - nu^2) / E (plane strain)."""
    fr = cfg.fracture
    if fr.critical_energy_release_rate is not None:
        return fr.critical_energy_release_rate
    el = cfg.materials.electrolyte
    return fr.toughness**2 * (1.0 - el.poisson_ratio**2) / el.youngs_modulus


def at2_peak_stress(E_prime: float, Gc: float, l: float) -> float:
    """Homogeneous AT2 peak stress 3 sqrt(3)/16 sqrt(E' Gc / l) (consistent units)."""
    return 3.0 * np.sqrt(3.0) / 16.0 * np.sqrt(E_prime * Gc / l)


def damaged_domain_threshold(s1_dir: np.ndarray, m: np.ndarray, s0: float, ratio: float) -> np.ndarray:
    """sigma_m0 for principal directions n_1 (n, 3) and c-axes m (n, 3)."""
    c2 = np.einsum("ni,ni->n", s1_dir, m) ** 2
    return 1.0 / (c2 / s0 + (1.0 - c2) / (ratio * s0))


def stress_criteria(sig: np.ndarray, m: np.ndarray, sigma_cp: float, tau_cp: float, sigma_b: float):
    """(D_cp, D_b) per cell for undegraded stresses sig (n, 3, 3) [MPa]."""
    t = np.einsum("nij,nj->ni", sig, m)
    tn = np.einsum("ni,ni->n", t, m)
    ts2 = np.maximum(np.einsum("ni,ni->n", t, t) - tn**2, 0.0)
    D_cp = np.maximum((np.maximum(tn, 0.0) / sigma_cp) ** 2 + ts2 / tau_cp**2 - 1.0, 0.0)
    s = np.linalg.eigvalsh(sig)
    D_b = np.maximum(((np.maximum(s, 0.0) / sigma_b) ** 2).sum(axis=1) - 1.0, 0.0)
    return D_cp, D_b


class FractureProblem:
    """The damage field d (shared with ``mechanics.d``) and its history H."""

    def __init__(self, domain: Domain, cfg, mechanics: MechanicsProblem):
        self.domain, self.cfg, self.mech = domain, cfg, mechanics
        fr = cfg.fracture
        msh = domain.mesh
        self.comm = msh.comm
        self.tdim = msh.topology.dim
        self.model = fr.model
        self.d = mechanics.d
        is_dg0 = self.d.function_space.ufl_element().degree == 0
        if (self.model == "damaged_domain") != is_dg0:
            raise ValueError("damage space mismatch: damaged_domain needs a DG0 d, the phase-field models a P1 d "
                             "(create the mechanics with d=make_damage_function(domain, cfg) or d=None)")
        self.l = scales.length(fr.length_scale)
        self.Gc = critical_energy_release_rate(cfg) / scales.ENERGY_PER_AREA  # MPa um
        self.sigma_b = scales.stress(fr.strength_bulk)
        self.sigma_cp = scales.stress(fr.strength_plane)
        self.tau_cp = scales.stress(fr.shear_strength_plane) if fr.shear_strength_plane else self.sigma_cp
        self.sigma_gb = scales.stress(fr.strength_grain_boundary)
        self.zeta = fr.slope
        dd = fr.damaged_domain
        self.dd_threshold = scales.stress(dd.threshold)
        self.dd_ratio = dd.threshold_ratio
        self.dd_batch = dd.cells_per_iteration
        self.ncell = num_local_cells(msh)
        self.ncell_owned = msh.topology.index_map(self.tdim).size_local
        Q = fem.functionspace(msh, ("DG", 0))
        self.Q = Q
        self.H = fem.Function(Q, name="history")
        self.Dtilde = fem.Function(Q, name="driving_force")
        self._qdofs = Q.dofmap.list[: self.ncell, 0]
        dx, _, _ = domain.measures()
        dx = dx(metadata={"quadrature_degree": 2})  # P1 x P1 with DG0 H: exact
        self.dx = dx
        self.crack_dofs = np.zeros(0, dtype=np.int32)
        self.solver = None
        self.krylov_iterations = 0
        self._saved = None
        if self.model != "damaged_domain":
            V = self.d.function_space
            self.V = V
            self.d_new = fem.Function(V)
            p_par, _ = domain.plane_tensors()
            self.beta_c = fem.Constant(msh, PETSc.ScalarType(fr.structural_tensor))
            self.l_c = fem.Constant(msh, PETSc.ScalarType(self.l))
            B = ufl.Identity(self.tdim) + self.beta_c * p_par
            dt, w = ufl.TrialFunction(V), ufl.TestFunction(V)
            lc = self.l_c
            self._a = ((1.0 + self.H) * dt * w + lc**2 * ufl.inner(B * ufl.grad(dt), ufl.grad(w))) * dx
            self._L = self.H * w * dx
            d = self.d
            self._surface_form = fem.form((d**2 / (2 * lc) + lc / 2 * ufl.inner(ufl.grad(d), ufl.grad(d))) * dx)
        else:
            self.V = self.d.function_space
            self._damaged_area_form = fem.form(self.d * dx)
            self._area_form = fem.form(fem.Constant(msh, PETSc.ScalarType(1.0)) * dx)
        self._gb = self._grain_boundary_normals() if self.model == "stress" else None

    # ------------------------------------------------------------------
    def _grain_boundary_normals(self):
        """(cells, normals) pairs: each local cell touching a GB facet with the
        facet's unit normal (3-vectors)."""
        msh, tdim = self.domain.mesh, self.tdim
        facets = self.domain.facet_tags.find(GRAIN_BOUNDARY)
        if len(facets) == 0:
            return np.zeros(0, np.int32), np.zeros((0, 3))
        geo = dmesh.entities_to_geometry(msh, tdim - 1, facets)
        x = msh.geometry.x[geo]
        if tdim == 2:
            t = x[:, 1, :] - x[:, 0, :]
            n = np.stack([-t[:, 1], t[:, 0], np.zeros(len(t))], axis=1)
        else:
            n = np.cross(x[:, 1, :] - x[:, 0, :], x[:, 2, :] - x[:, 0, :])
        n /= np.linalg.norm(n, axis=1)[:, None]
        msh.topology.create_connectivity(tdim - 1, tdim)
        f2c = msh.topology.connectivity(tdim - 1, tdim)
        cells, normals = [], []
        for f, nf in zip(facets, n):
            for c in f2c.links(f):
                cells.append(c)
                normals.append(nf)
        return np.asarray(cells, np.int32), np.asarray(normals)

    def add_crack_dofs(self, dofs: np.ndarray) -> None:
        """Hold d = 1 on these local dofs (an initial crack as a Dirichlet
        condition of the damage equation)."""
        self.crack_dofs = np.unique(np.concatenate([self.crack_dofs, np.asarray(dofs, np.int32)]))
        self.d.x.array[self.crack_dofs] = 1.0
        self.solver = None

    def _build_solver(self):
        bcs = []
        if self.comm.allreduce(len(self.crack_dofs), op=MPI.SUM) > 0:
            bcs.append(fem.dirichletbc(PETSc.ScalarType(1.0), self.crack_dofs, self.V))
        self.solver = LinearSolver(self._a, self._L, bcs, "fracture_", self.comm,
                                   overrides=self.cfg.solver.petsc.get("fracture"), direct_fallback=True)

    # ------------------------------------------------------------------
    def driving_force(self) -> np.ndarray:
        """Dtilde per local cell (owned + ghost) with the current u, xi."""
        mech = self.mech
        if self.model == "energy":
            return np.maximum(2.0 * self.l * mech.cell_psi_plus() / self.Gc, 0.0) * (1.0 - mech.cell_metal_fraction())
        if self.model == "stress":
            sig = mech.cell_stress(undegraded=True)
            m = mech.cell_plane_normal()
            D_cp, D_b = stress_criteria(sig, m, self.sigma_cp, self.tau_cp, self.sigma_b)
            D = np.maximum(D_cp, D_b)
            cells, normals = self._gb
            if len(cells):
                D_gb, _ = stress_criteria(sig[cells], normals, self.sigma_gb, self.sigma_gb, np.inf)
                np.maximum.at(D, cells, D_gb)
            return self.zeta * D * (1.0 - mech.cell_metal_fraction())
        raise ValueError("damaged_domain has no continuous driving force; see update_history")

    def update_history(self) -> None:
        """H <- max(H, Dtilde) per cell (damaged_domain: H <- max(H,
        sigma_1 / sigma_m0), and solve() sets d = 1 where H >= 1)."""
        if self.model == "damaged_domain":
            self._update_damaged_domain()
            return
        D = self.driving_force()
        self.Dtilde.x.array[self._qdofs] = D
        h = self.H.x.array
        h[self._qdofs] = np.maximum(h[self._qdofs], D)
        self.H.x.scatter_forward()

    def _update_damaged_domain(self) -> None:
        sig = self.mech.cell_stress()
        m = self.mech.cell_plane_normal()
        w, vec = np.linalg.eigh(sig)
        s1, n1 = w[:, -1], vec[:, :, -1]
        thr = damaged_domain_threshold(n1, m, self.dd_threshold, self.dd_ratio)
        ratio = s1 / thr
        self.Dtilde.x.array[self._qdofs] = ratio
        h = self.H.x.array
        h[self._qdofs] = np.maximum(h[self._qdofs], ratio)  # H = max_t sigma_1 / sigma_m0
        self.H.x.scatter_forward()

    def solve(self, t: float = 0.0, dt: float = 0.0) -> dict:
        """Solve the damage equation with the current H (CG + GAMG; call
        ``update_history`` first); d never decreases and stays in [0, 1].
        Rate-independent: t and dt play no part. Returns {"krylov_iterations"}.
        damaged_domain: d = 1 where sigma_1 >= sigma_m0 (no solve, 0)."""
        d = self.d.x.array
        if self.model == "damaged_domain":
            vals = d[self._qdofs]
            if self.dd_batch == 0:
                vals[self.H.x.array[self._qdofs] >= 1.0] = 1.0
            else:
                vals[self._cascade_batch(vals)] = 1.0
            d[self._qdofs] = vals
            self.d.x.scatter_forward()
            self.krylov_iterations = 0
            return {"krylov_iterations": 0}
        if self.solver is None:
            self._build_solver()
        its = self.solver.solve(self.d_new)
        d[:] = np.clip(np.maximum(self.d_new.x.array, d), 0.0, 1.0)
        self.d.x.scatter_forward()
        self.krylov_iterations = its
        return {"krylov_iterations": its}

    def _cascade_batch(self, d_cells: np.ndarray) -> np.ndarray:
        """Owned cells to break now (``cells_per_iteration`` = N > 0): of the
        intact cells whose current sigma_1 / sigma_m0 >= 1, the N with the
        largest ratio over all ranks (ties included)."""
        n_own = self.ncell_owned
        ratio = self.Dtilde.x.array[self._qdofs[:n_own]]
        cand = np.flatnonzero((ratio >= 1.0) & (d_cells[:n_own] < 1.0))
        top = cand[np.argsort(-ratio[cand], kind="stable")[: self.dd_batch]]
        best = np.sort(np.concatenate(self.comm.allgather(ratio[top])))[::-1]
        if best.size == 0:
            return top
        cut = best[min(self.dd_batch, best.size) - 1]
        return top[ratio[top] >= cut]

    # ------------------------------------------------------------------
    def crack_surface(self) -> float:
        """Gamma_l = int (d^2/(2l) + l/2 |grad d|^2) dx [um in 2D]; for
        damaged_domain the damaged area divided by the mean cell size."""
        if self.model == "damaged_domain":
            a = self.comm.allreduce(fem.assemble_scalar(self._damaged_area_form), op=MPI.SUM)
            A = self.comm.allreduce(fem.assemble_scalar(self._area_form), op=MPI.SUM)
            ncells = self.domain.mesh.topology.index_map(self.tdim).size_global
            hmean = (A / ncells) ** (1.0 / self.tdim)
            return float(a / hmean)
        return float(self.comm.allreduce(fem.assemble_scalar(self._surface_form), op=MPI.SUM))

    def crack_length(self) -> float:
        """Crack length [m] (2D; crack area [m^2] in 3D): the crack-surface
        functional (surface energy / Gc)."""
        return float(self.crack_surface() * scales.LENGTH ** (self.tdim - 1))

    def fracture_energy(self) -> float:
        """Gc Gamma_l in SI: J/m (2D), J (3D)."""
        return float(self.Gc * self.crack_surface() * scales.STRESS * scales.LENGTH ** self.tdim)

    def _damaged_points(self, threshold=0.5) -> np.ndarray:
        if self.model == "damaged_domain":
            cells = np.arange(self.ncell_owned, dtype=np.int32)
            vals = self.d.x.array[self._qdofs[: self.ncell_owned]]
            x = dmesh.compute_midpoints(self.domain.mesh, self.tdim, cells[vals > threshold])
            return x
        nown = self.V.dofmap.index_map.size_local
        x = self.V.tabulate_dof_coordinates()[:nown]
        return x[self.d.x.array[:nown] > threshold]

    def crack_tip(self, threshold: float = 0.5) -> float:
        """Largest y (distance from the plating electrode y = 0) where
        d > 0.5 [m]; NaN if nothing is damaged."""
        x = self._damaged_points(threshold)
        local = x[:, 1].max() if len(x) else -np.inf
        y = self.comm.allreduce(local, op=MPI.MAX)
        return float("nan") if not np.isfinite(y) else float(y * scales.LENGTH)

    def max_damage(self) -> float:
        n = self.V.dofmap.index_map.size_local
        local = self.d.x.array[:n].max() if n else 0.0
        return float(self.comm.allreduce(local, op=MPI.MAX))

    def max_history(self) -> float:
        local = self.H.x.array[self._qdofs[: self.ncell_owned]].max() if self.ncell_owned else 0.0
        return float(self.comm.allreduce(local, op=MPI.MAX))

    # ------------------------------------------------------------------
    def save_state(self) -> None:
        self._saved = (self.d.x.array.copy(), self.H.x.array.copy())

    def restore_state(self) -> None:
        if self._saved is not None:
            self.d.x.array[:] = self._saved[0]
            self.H.x.array[:] = self._saved[1]
            self.d.x.scatter_forward()
            self.H.x.scatter_forward()

    def commit(self) -> None:
        """Nothing pending: the history H is updated in place (irreversible)."""

    def checkpoint_functions(self) -> dict:
        return {"H": self.H}

    def checkpoint_state(self) -> dict:
        return {}

    def load_checkpoint_state(self, state: dict) -> None:
        self.H.x.scatter_forward()

    def scalars(self, t: float) -> dict:
        return {"crack_length_m": self.crack_length(), "crack_tip_m": self.crack_tip(),
                "fracture_energy_J_m": self.fracture_energy()}

    def output_functions(self) -> list[fem.Function]:
        return [self.d]

    def dofs(self) -> int:
        return self.domain.num_dofs(self.V)


# --------------------------------------------------------------------------
# a notched (slit) rectangle for fracture tests and benchmarks
# --------------------------------------------------------------------------
def slit_rectangle_domain(comm: MPI.Comm, width: float, height: float, nx: int, ny: int,
                          slit_length: float, slit_y: float | None = None, theta: float = 0.0,
                          diagonal: str = "crossed") -> Domain:
    """Structured triangle mesh of [0, W] x [0, H] (um) with a geometric slit
    (duplicated nodes) from (0, slit_y) to (slit_length, slit_y); one grain of
    conduction-plane angle theta. Facet tags: 1 bottom, 2 top, 3 other outer,
    5 slit faces. ``slit_y`` must fall on a grid line (default H/2, ny even).
    ``diagonal``: 'crossed' (4 triangles per quad, no directional bias) or
    'right'."""
    if slit_y is None:
        slit_y = height / 2
    j_slit = int(round(slit_y / height * ny))
    if abs(j_slit * height / ny - slit_y) > 1e-9 * height:
        raise ValueError("slit_y must lie on a grid line")
    shared = dmesh.GhostMode.shared_facet
    if comm.rank == 0:
        xs, ys = np.linspace(0, width, nx + 1), np.linspace(0, height, ny + 1)
        X, Y = np.meshgrid(xs, ys, indexing="xy")
        pts = [np.stack([X.ravel(), Y.ravel()], axis=1)]
        nid = lambda i, j: j * (nx + 1) + i  # noqa: E731
        cells = []
        nbase = (nx + 1) * (ny + 1)
        if diagonal == "crossed":
            cx = (X[:-1, :-1] + X[1:, 1:]) / 2
            cy = (Y[:-1, :-1] + Y[1:, 1:]) / 2
            pts.append(np.stack([cx.ravel(), cy.ravel()], axis=1))
        for j in range(ny):
            for i in range(nx):
                a, b, c, d = nid(i, j), nid(i + 1, j), nid(i + 1, j + 1), nid(i, j + 1)
                if diagonal == "crossed":
                    m = nbase + j * nx + i
                    cells += [[a, b, m], [b, c, m], [c, d, m], [d, a, m]]
                else:
                    cells += [[a, b, c], [a, c, d]]
        x = np.concatenate(pts, axis=0)
        cells = np.asarray(cells, dtype=np.int64)
        # duplicate the slit nodes for the cells above the slit
        on_slit = np.flatnonzero((np.abs(x[:, 1] - slit_y) < 1e-9 * height) & (x[:, 0] < slit_length - 1e-9 * width))
        dup = {int(k): len(x) + n for n, k in enumerate(on_slit)}
        x = np.concatenate([x, x[on_slit]], axis=0)
        cy = x[cells, 1].mean(axis=1)
        above = cy > slit_y
        for c in np.flatnonzero(above):
            cells[c] = [dup.get(int(v), int(v)) for v in cells[c]]
    else:
        x = np.zeros((0, 2))
        cells = np.zeros((0, 3), dtype=np.int64)
    import basix.ufl

    el = ufl.Mesh(basix.ufl.element("Lagrange", "triangle", 1, shape=(2,)))
    msh = dmesh.create_mesh(comm, cells, x, el, partitioner=dmesh.create_cell_partitioner(shared))
    tdim = 2
    ncell = num_local_cells(msh)
    bottom, top, other = box_boundary_facets(msh, height)
    mid = dmesh.compute_midpoints(msh, tdim - 1, other) if len(other) else np.zeros((0, 3))
    is_slit = (np.abs(mid[:, 1] - slit_y) < 1e-9 * height) & (mid[:, 0] < slit_length) if len(other) else np.zeros(0, bool)
    facet_tags = make_facet_tags(msh, {PLATING_ELECTRODE: bottom, COUNTER_ELECTRODE: top,
                                       OUTER: other[~is_slit], FLAW: other[is_slit]})
    grain = np.ones(ncell, dtype=np.int32)
    cell_tags = dmesh.meshtags(msh, tdim, np.arange(ncell, dtype=np.int32), grain)
    return Domain(
        mesh=msh, cell_tags=cell_tags, facet_tags=facet_tags,
        grain_id=dg0_from_cell_values(msh, grain.astype(float), "grain_id"),
        theta=dg0_from_cell_values(msh, np.full(ncell, theta), "orientation"),
        gb_band=dg0_from_cell_values(msh, np.zeros(ncell), "grain_boundary_band"),
        n_grains=1, width=width, height=height,
        info={"kind": "slit_rectangle", "angles": [theta], "slit_length": slit_length, "slit_y": slit_y},
    )
