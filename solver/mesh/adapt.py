"""Adaptive mesh (config ``mesh.adapt``, docs/user/adaptivity.md).

Every ``mesh.adapt.every`` accepted steps, and as soon as the band below
reaches a cell of the base size (the front is leaving the refined band), the
model is moved onto a new mesh:

1. indicator, on the current mesh: cells where the Na interface is diffuse
   (xi_lo < xi < xi_hi at a vertex, or xi crossing the band inside the
   cell), where the damage d exceeds ``damage_threshold`` (cracks), where
   the fracture history H (the local driving force) exceeds
   ``history_threshold`` (the process zone ahead of a crack tip, before the
   diffuse AT2 damage shows), and where c~ changes by more than
   ``concentration_jump`` across a cell. Their centroids (gathered on every
   rank) form the band; with ``refine_flaws`` the midpoints of the flaw
   facets of the base mesh (notches, cracks, pores: where cracks start) are
   part of it from t = 0.
2. refinement of the coarse BASE mesh (the mesh the config builds), level by
   level with DOLFINx's own refinement (``dolfinx.mesh.refine``, parent
   cell and facet maps, cells kept on their rank): at each level every cell
   whose centroid lies within ``margin`` + its own radius of the band, and
   whose longest edge is above ``h_min``, has its edges split. Starting from
   the base each time, the mesh coarsens where the front has passed. A level
   that would take the estimated DOFs above ``max_dofs`` is not made (logged).
3. grain ids follow the parent cells, facet tags (electrodes, outer, grain
   boundaries, flaws) the parent facets (``transfer_meshtag``); the refined
   mesh is then redistributed with shared-facet ghosts (graph partitioner,
   which also balances the refined band over the ranks); orientations are
   the per-grain table of the base.
4. a new model is built on the new Domain by the same factory as the run
   (``run.build_model``) and every field of its committed state (the
   checkpoint functions: u, (xi, c~, psi), d, H, p) is moved with
   non-matching interpolation, then its scalars (voltage, charge, time) as on
   a restart. The history H is the max over the old cells whose centroid
   lies in a new cell (and the old value at the new centroid): it never
   decreases. d (P1) keeps its values at the points of the new vertices.
   The metal volume int xi dx is measured before and after; the difference
   (the transfer error, logged per remesh) is put back by
   xi += lambda xi (1 - xi), which changes xi only in the interface.

A step whose trial state left the refined band (a crack that ran out within
the step) is redone, at most ``max_redo`` times, on the base refined towards
that trial state (:meth:`MeshAdapter.solve_step`, called by the time loop in
place of ``model.solve``).

A remesh that fails (a new-mesh point not found on the old mesh, a build
error) raises :class:`AdaptError`: the run stops ``failed`` with the old model,
whose state is untouched, checkpointed.
"""

from __future__ import annotations

import time

import numpy as np
from mpi4py import MPI

from ..io.log import get_logger
from ..numerics.linalg import SolveError
from ..numerics.memory import retire


class AdaptError(SolveError):
    """A remesh that could not be completed (the old model is intact)."""


# --------------------------------------------------------------------------
# parallel helpers
# --------------------------------------------------------------------------
def _owners(offsets: np.ndarray, gidx: np.ndarray) -> np.ndarray:
    return np.searchsorted(offsets, gidx, side="right") - 1


def _fetch(comm: MPI.Comm, offsets: np.ndarray, local: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """local[g - offsets[rank]] from the rank owning global index g, for each g in ``wanted``."""
    wanted = np.asarray(wanted, dtype=np.int64)
    own = _owners(offsets, wanted)
    order = np.argsort(own, kind="stable")
    counts = np.bincount(own, minlength=comm.size)
    splits = np.split(wanted[order], np.cumsum(counts)[:-1])
    requests = comm.alltoall(splits)
    replies = comm.alltoall([local[r - offsets[comm.rank]] for r in requests])
    out = np.empty((len(wanted),) + local.shape[1:], dtype=local.dtype)
    out[order] = np.concatenate(replies) if len(replies) else out[order]
    return out


def _send_max(comm: MPI.Comm, offsets: np.ndarray, gidx: np.ndarray, values: np.ndarray, n_local: int) -> np.ndarray:
    """Max of ``values`` sent to global index ``gidx`` (owned by the rank of offsets); -inf where none arrived."""
    own = _owners(offsets, gidx)
    order = np.argsort(own, kind="stable")
    counts = np.bincount(own, minlength=comm.size)
    cuts = np.cumsum(counts)[:-1]
    got_i = comm.alltoall(np.split(gidx[order], cuts))
    got_v = comm.alltoall(np.split(values[order], cuts))
    out = np.full(n_local, -np.inf)
    if got_i:
        i = np.concatenate(got_i) - offsets[comm.rank]
        np.maximum.at(out, i.astype(np.int64), np.concatenate(got_v))
    return out


def _offsets(comm: MPI.Comm, n: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(comm.allgather(int(n)))]).astype(np.int64)


# --------------------------------------------------------------------------
# mesh + tags, unghosted (refinement) and ghosted (solving)
# --------------------------------------------------------------------------
class TaggedMesh:
    """A mesh with one grain id per local cell and facet tags."""

    def __init__(self, msh, grain: np.ndarray, facet_tags):
        self.mesh, self.grain, self.facet_tags = msh, np.asarray(grain, dtype=np.int32), facet_tags

    @property
    def tdim(self) -> int:
        return self.mesh.topology.dim

    def n_owned(self) -> int:
        return self.mesh.topology.index_map(self.tdim).size_local

    def global_cells(self) -> int:
        return self.mesh.topology.index_map(self.tdim).size_global

    def global_vertices(self) -> int:
        return self.mesh.geometry.index_map().size_global

    def owned_arrays(self):
        """(cells as global node indices, owned node coordinates, grain of owned cells)."""
        msh = self.mesh
        gim = msh.geometry.index_map()
        n = self.n_owned()
        dm = msh.geometry.dofmap[:n]
        cells = gim.local_to_global(dm.reshape(-1).astype(np.int32)).reshape(dm.shape).astype(np.int64)
        x = msh.geometry.x[: gim.size_local, : msh.geometry.dim].copy()
        return cells, x, self.grain[:n]

    def facet_records(self):
        """Tagged facets as sorted global node keys (every rank gets all of them) and tags."""
        from dolfinx import mesh as dmesh

        msh, ft = self.mesh, self.facet_tags
        gim = msh.geometry.index_map()
        if len(ft.indices):
            geo = dmesh.entities_to_geometry(msh, self.tdim - 1, ft.indices.astype(np.int32))
            keys = np.sort(gim.local_to_global(geo.reshape(-1).astype(np.int32)).reshape(geo.shape), axis=1)
        else:
            keys = np.zeros((0, self.tdim), dtype=np.int64)
        allk = self.mesh.comm.allgather((keys.astype(np.int64), ft.values.astype(np.int32)))
        keys = np.concatenate([k for k, _ in allk])
        vals = np.concatenate([v for _, v in allk])
        keys, first = np.unique(keys, axis=0, return_index=True)
        return keys, vals[first]


def _void(keys: np.ndarray) -> np.ndarray:
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    return keys.view(np.dtype((np.void, keys.dtype.itemsize * keys.shape[1]))).ravel()


def redistribute(tm: TaggedMesh, ghost_mode) -> TaggedMesh:
    """The same mesh, partitioned anew with ``ghost_mode`` (create_mesh), with
    the grain ids (by original cell index) and the facet tags (by global node
    keys) carried over."""
    from dolfinx import mesh as dmesh

    comm = tm.mesh.comm
    cells, x, grain = tm.owned_arrays()
    keys, vals = tm.facet_records()
    import ufl

    # a UFL domain of its own (sharing one would re-point the forms of the old mesh)
    new = dmesh.create_mesh(comm, cells, x, ufl.Mesh(tm.mesh.ufl_domain().ufl_coordinate_element()),
                            partitioner=dmesh.create_cell_partitioner(ghost_mode))
    tdim = new.topology.dim
    orig = np.asarray(new.topology.original_cell_index, dtype=np.int64)
    new_grain = _fetch(comm, _offsets(comm, len(cells)), grain, orig)
    new.topology.create_entities(tdim - 1)
    new.topology.create_connectivity(tdim - 1, tdim)
    fim = new.topology.index_map(tdim - 1)
    nf = fim.size_local + fim.num_ghosts
    facets = np.arange(nf, dtype=np.int32)
    geo = dmesh.entities_to_geometry(new, tdim - 1, facets)
    fkeys = np.sort(np.asarray(new.geometry.input_global_indices, dtype=np.int64)[geo], axis=1)
    kv, fv = _void(keys), _void(fkeys)
    order = np.argsort(kv)
    pos = np.searchsorted(kv[order], fv)
    pos = np.minimum(pos, max(len(kv) - 1, 0))
    hit = (kv[order][pos] == fv) if len(kv) else np.zeros(nf, bool)
    ft = dmesh.meshtags(new, tdim - 1, facets[hit], vals[order][pos[hit]].astype(np.int32))
    return TaggedMesh(new, new_grain, ft)


def refine_once(tm: TaggedMesh, cells: np.ndarray) -> TaggedMesh:
    """Split the edges of the local ``cells`` of an unghosted mesh (plaza,
    cells stay on their rank); grain ids and facet tags by the parent maps."""
    from dolfinx import mesh as dmesh
    from dolfinx.cpp.refinement import RefinementOption

    msh, tdim = tm.mesh, tm.tdim
    msh.topology.create_entities(1)
    msh.topology.create_connectivity(tdim, 1)
    c2e = msh.topology.connectivity(tdim, 1)
    edges = np.unique(c2e.array.reshape(-1, c2e.offsets[1])[cells].reshape(-1)).astype(np.int32)
    new, pc, pf = dmesh.refine(msh, edges, partitioner=None, option=RefinementOption.parent_cell_and_facet)
    new.topology.create_entities(tdim - 1)
    new.topology.create_connectivity(tdim - 1, tdim)
    msh.topology.create_connectivity(tdim - 1, tdim)
    ft = dmesh.transfer_meshtag(tm.facet_tags, new, pc, pf)
    # the cell tags through transfer_meshtag too: parent_cell follows the refined mesh's input cell order
    n = len(tm.grain)
    ct = dmesh.transfer_meshtag(dmesh.meshtags(msh, tdim, np.arange(n, dtype=np.int32), tm.grain), new, pc)
    im = new.topology.index_map(tdim)
    grain = np.zeros(im.size_local + im.num_ghosts, dtype=np.int32)
    grain[ct.indices] = ct.values
    if len(ct.indices) != len(grain):
        raise AdaptError(f"mesh.adapt: {len(grain) - len(ct.indices)} refined cell(s) without a grain id")
    return TaggedMesh(new, grain, ft)


def cell_geometry(msh):
    """(centroids (n, 3), radius = largest centroid-vertex distance, longest edge) of the local cells."""
    imap = msh.topology.index_map(msh.topology.dim)
    n = imap.size_local + imap.num_ghosts
    X = msh.geometry.x[msh.geometry.dofmap[:n]]  # (n, nv, 3)
    cen = X.mean(axis=1)
    radius = np.linalg.norm(X - cen[:, None, :], axis=2).max(axis=1)
    nv = X.shape[1]
    edge = np.zeros(n)
    for i in range(nv):
        for j in range(i + 1, nv):
            edge = np.maximum(edge, np.linalg.norm(X[:, i] - X[:, j], axis=1))
    return cen, radius, edge


# --------------------------------------------------------------------------
# the indicator
# --------------------------------------------------------------------------
def _cell_values(f, n: int, component: int | None = None) -> np.ndarray:
    """(n cells, vertices) values of a P1 (or DG0) function, one component of a blocked one."""
    V = f.function_space
    bs = V.dofmap.index_map_bs
    dofs = V.dofmap.list[:n]
    arr = f.x.array.reshape(-1, bs)
    return arr[dofs, component or 0] if bs > 1 else f.x.array[dofs]


def indicator_cells(model, ad, concentration: bool = True) -> np.ndarray:
    """Owned cells of ``model``'s mesh that need the finest cells (mesh.adapt
    thresholds; ``concentration``: also the steep-c~ criterion); see the module docstring."""
    msh = model.domain.mesh
    n = msh.topology.index_map(msh.topology.dim).size_local
    flag = np.zeros(n, dtype=bool)
    lo, hi = ad.xi_band
    xi = getattr(model, "xi", None)
    ec = getattr(model, "ec", None)
    if xi is not None and ec is not None:
        v = _cell_values(xi, n)
        vmin, vmax = v.min(axis=1), v.max(axis=1)
        flag |= (vmax > lo) & (vmin < hi)
    d = getattr(model, "d", None)
    if d is not None and getattr(model, "frac", None) is not None and ad.damage_threshold < 1.0:
        flag |= _cell_values(d, n).max(axis=1) > ad.damage_threshold
    frac = getattr(model, "frac", None)
    if frac is not None and getattr(frac, "H", None) is not None and ad.history_threshold > 0.0:
        flag |= _cell_values(frac.H, n).max(axis=1) > ad.history_threshold
    if ec is not None and concentration and ad.concentration_jump > 0.0:
        from ..physics.electrochemistry import CONC

        c = _cell_values(ec.u_n, n, CONC)
        flag |= (c.max(axis=1) - c.min(axis=1)) > ad.concentration_jump
    return np.flatnonzero(flag).astype(np.int32)


# --------------------------------------------------------------------------
# transfer
# --------------------------------------------------------------------------
def _interp(f_to, f_from, cache: dict, padding: float):
    from dolfinx import fem

    V_to, V_from = f_to.function_space, f_from.function_space
    key = (id(V_to), id(V_from))
    if key not in cache:
        msh = V_to.mesh
        imap = msh.topology.index_map(msh.topology.dim)
        cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
        data = fem.create_interpolation_data(V_to, V_from, cells, padding=padding)
        # every new interpolation point must lie on the old mesh: move ones, expect ones
        ones_from, ones_to = fem.Function(V_from), fem.Function(V_to)
        ones_from.x.array[:] = 1.0
        ones_to.interpolate_nonmatching(ones_from, cells, data)
        n_own = V_to.dofmap.index_map.size_local * V_to.dofmap.index_map_bs
        lost = msh.comm.allreduce(int(np.sum(np.abs(ones_to.x.array[:n_own] - 1.0) > 1e-8)), op=MPI.SUM)
        if lost:
            raise AdaptError(f"mesh.adapt: {lost} interpolation point(s) of the new mesh not found on the old one "
                             f"(space {V_to.element.signature()[:40]}...)")
        cache[key] = (cells, data)
    cells, data = cache[key]
    f_to.interpolate_nonmatching(f_from, cells, data)
    f_to.x.scatter_forward()


def transfer_history_max(H_new, H_old, cache: dict, padding: float) -> None:
    """DG0 history onto the new mesh, never lower: the old value at each new
    centroid, raised to the max of the old cells whose centroid lies in the
    new cell (where the new mesh is coarser)."""
    from dolfinx import fem

    _interp(H_new, H_old, cache, padding)
    Vn, Vo = H_new.function_space, H_old.function_space
    comm = Vn.mesh.comm
    imn = Vn.dofmap.index_map
    gidx = fem.Function(Vn)
    gidx.x.array[:] = imn.local_to_global(np.arange(imn.size_local + imn.num_ghosts, dtype=np.int32)).astype(float)
    where = fem.Function(Vo)
    _interp(where, gidx, cache, padding)
    n_old = Vo.dofmap.index_map.size_local
    g = np.rint(where.x.array[:n_old]).astype(np.int64)
    offs = np.concatenate([[0], np.cumsum(comm.allgather(imn.size_local))]).astype(np.int64)
    top = _send_max(comm, offs, g, H_old.x.array[:n_old].copy(), imn.size_local)
    a = H_new.x.array
    a[: imn.size_local] = np.maximum(a[: imn.size_local], top)
    H_new.x.scatter_forward()


def metal_integral(model) -> float | None:
    ec = getattr(model, "ec", None)
    return None if ec is None else float(ec.metal_area())


def conserve_metal(model, target_m2: float) -> float:
    """xi += lambda xi (1 - xi) on the committed state so that int xi dx =
    target [m^2 (2D)]; returns lambda."""
    from dolfinx import fem

    from .. import scales
    from ..physics.electrochemistry import XI

    ec = model.ec
    bs = ec.u_n.function_space.dofmap.index_map_bs
    arr = ec.u_n.x.array.reshape(-1, bs)
    xi = arr[:, XI].copy()
    w = np.clip(xi, 0.0, 1.0) * (1.0 - np.clip(xi, 0.0, 1.0))
    # int w dx with the P1 w: the correction is exact for int xi dx
    V = ec.u_n.function_space
    sub, sub_map = V.sub(XI).collapse()
    wsub = fem.Function(sub)
    wsub.x.array[:] = w[np.asarray(sub_map) // bs] if bs > 1 else w
    Wint = model.domain.comm.allreduce(fem.assemble_scalar(fem.form(wsub * model.domain.measures()[0])), op=MPI.SUM)
    now = ec.metal_area() / scales.LENGTH ** ec.tdim
    target = target_m2 / scales.LENGTH ** ec.tdim
    if Wint <= 0.0:
        return 0.0
    lam = (target - now) / Wint
    arr[:, XI] = xi + lam * w
    ec.u_n.x.scatter_forward()
    return lam


def transfer_state(old, new, padding: float) -> dict:
    """Every committed field of ``old`` onto ``new`` (checkpoint functions and
    scalars, like a restart), the history max'ed, the metal volume put back.
    Returns the measured errors."""
    cache: dict = {}
    f_old, f_new = old.checkpoint_functions(), new.checkpoint_functions()
    missing = sorted(set(f_new) ^ set(f_old))
    if missing:
        raise AdaptError(f"mesh.adapt: the new model's state differs from the old one's ({missing})")
    for key, fn in f_new.items():
        dg0 = fn.function_space.element.space_dimension == 1 and fn.function_space.dofmap.index_map_bs == 1
        if key.endswith("_H") or (key == "d_shared" and dg0):  # histories: never lower (DG0 d: damaged_domain)
            transfer_history_max(fn, f_old[key], cache, padding)
        else:
            _interp(fn, f_old[key], cache, padding)
    stats = {}
    metal_old = metal_integral(old)
    new.load_checkpoint_state(old.checkpoint_state())
    if metal_old is not None:
        ec_old, ec_new = old.ec, new.ec
        ec_new.area0 = ec_old.area0  # deposited volume: against the initial metal of the first mesh
        raw = metal_integral(new)
        stats["metal_m2_before"] = metal_old
        stats["metal_rel_error_raw"] = (raw - metal_old) / metal_old if metal_old else 0.0
        if new.cfg.mesh.adapt.conserve_metal:
            stats["metal_lambda"] = conserve_metal(new, metal_old)
            new.load_checkpoint_state(old.checkpoint_state())
        after = metal_integral(new)
        stats["metal_rel_error"] = (after - metal_old) / metal_old if metal_old else 0.0
    if hasattr(new, "_copy_xi") and getattr(new, "ec", None) is not None:
        new._copy_xi()
    return stats


# --------------------------------------------------------------------------
class MeshAdapter:
    """Remeshes a model every ``mesh.adapt.every`` steps (see module docstring)."""

    def __init__(self, ctx, model, build):
        from dolfinx import mesh as dmesh

        self.ctx, self.cfg, self.comm = ctx, ctx.cfg, ctx.comm
        self.ad = self.cfg.mesh.adapt
        self.build = build  # domain -> model (run.build_model)
        self.log = get_logger()
        base = model.domain if not getattr(model.domain, "info", {}).get("adapted") else None
        if base is None:
            from . import build_domain

            base = build_domain(self.cfg, self.comm)
        self.base_domain = base
        tdim = base.mesh.topology.dim
        n_own = base.mesh.topology.index_map(tdim).size_local
        grain = base.cell_tags.values[np.argsort(base.cell_tags.indices)]
        self.base = redistribute(TaggedMesh(base.mesh, grain, base.facet_tags), dmesh.GhostMode.none)
        self.base_h = self.comm.allreduce(float(cell_geometry(base.mesh)[2][:n_own].max(initial=0.0)), op=MPI.MAX)
        # per-grain orientation tables (theta; c_axis in 3D)
        n = int(base.n_grains)
        ncell = len(grain)
        th = np.full(n + 1, -np.inf)
        dofs = base.theta.function_space.dofmap.list[:ncell, 0]
        np.maximum.at(th, grain, base.theta.x.array[dofs])
        self.comm.Allreduce(MPI.IN_PLACE, th, op=MPI.MAX)
        self.theta = th
        self.c_axis = None
        if base.c_axis is not None:
            ca = np.full((n + 1, 3), -np.inf)
            cd = base.c_axis.function_space.dofmap.list[:ncell, 0]
            np.maximum.at(ca, grain, base.c_axis.x.array.reshape(-1, 3)[cd])
            self.comm.Allreduce(MPI.IN_PLACE, ca, op=MPI.MAX)
            self.c_axis = ca
        self.flaw_points = self._flaw_points(base) if self.ad.refine_flaws else np.zeros((0, 3))
        self.remeshes = int(getattr(model.domain, "info", {}).get("remesh", 0))
        self.records: list[dict] = []
        self.last_retired = 0  # PETSc objects the last adapt destroyed with the model it replaced
        self.h_min = self.ad.h_min / _length_unit() if self.ad.h_min else 0.0

    def _flaw_points(self, base) -> np.ndarray:
        """Midpoints (um) of the base mesh's flaw facets, gathered on every rank."""
        from dolfinx import mesh as dmesh

        from .tags import FLAW

        msh = base.mesh
        tdim = msh.topology.dim
        nf = msh.topology.index_map(tdim - 1).size_local
        f = base.facet_tags.find(FLAW)
        f = f[f < nf].astype(np.int32)
        mid = dmesh.compute_midpoints(msh, tdim - 1, f) if len(f) else np.zeros((0, 3))
        return np.concatenate(self.comm.allgather(mid)).reshape(-1, 3)

    def band(self, model, concentration: bool = True) -> np.ndarray:
        """Centroids (um) of the indicator cells of ``model`` on every rank, plus the flaw facet midpoints."""
        cen, _, _ = cell_geometry(model.domain.mesh)
        own = cen[indicator_cells(model, self.ad, concentration)]
        return np.concatenate(self.comm.allgather(own) + [self.flaw_points]).reshape(-1, 3)

    # ------------------------------------------------------------------
    def initial(self, model):
        """The model at t = 0 on a mesh adapted to its initial state: the new
        model sets its initial fields from the config on the finer mesh (no
        transfer); repeated, at most ``levels`` times, until the mesh stays."""
        for _ in range(self.ad.levels):
            band = self.band(model)
            per_vertex = model.dofs() / max(1, model.domain.mesh.geometry.index_map().size_global)
            tm, level, _ = self.refined_base(band, per_vertex)
            if self._same_mesh(tm, model.domain.mesh):
                break
            from dolfinx import mesh as dmesh

            domain = self.make_domain(redistribute(tm, dmesh.GhostMode.shared_facet))
            domain.info["remesh"] = 0
            new = self.build(domain)
            retire(model, new, self.comm)
            model = new
            self.log.info(f"initial mesh: {len(band)} band cells, {level} level(s), {tm.global_cells()} cells, "
                          f"DOFs {model.dofs()}")
        return model

    def due(self, step: int, model=None) -> bool:
        """Every ``every`` steps, or (``model`` given) as soon as the band
        reaches a cell of the base size: the front is leaving the refined band."""
        if not self.ad.enabled or step <= 0:
            return False
        return step % self.ad.every == 0 or (model is not None and self.escaped(model))

    def _unrefined_mask(self, model) -> np.ndarray:
        """Owned cells of ``model``'s mesh that are as large as the base cell
        around their centroid (not refined), cached per mesh."""
        from dolfinx import fem

        msh = model.domain.mesh
        key = id(msh)
        if getattr(self, "_mask_key", None) != key:
            b = self.base_domain.mesh
            nb = b.topology.index_map(b.topology.dim).size_local + b.topology.index_map(b.topology.dim).num_ghosts
            Qb = fem.functionspace(b, ("DG", 0))
            size_b = fem.Function(Qb)
            size_b.x.array[Qb.dofmap.list[:nb, 0]] = cell_geometry(b)[2][:nb]
            Q = fem.functionspace(msh, ("DG", 0))
            size = fem.Function(Q)
            _interp(size, size_b, {}, self.padding())
            n = msh.topology.index_map(msh.topology.dim).size_local
            own = cell_geometry(msh)[2][:n]
            self._mask = (own > 0.75 * size.x.array[Q.dofmap.list[:n, 0]]) & (own > self.h_min * (1.0 + 1e-9))
            self._mask_key = key
        return self._mask

    def escaped(self, model) -> bool:
        """Collective: the Na interface or the damage reaches an unrefined cell
        (and the last remesh was not capped by max_dofs). The c~ criterion waits
        for the period: a diffusion front widens without moving the deposit."""
        if self.records and self.records[-1].get("capped"):
            return False
        flagged = indicator_cells(model, self.ad, concentration=False)
        unrefined = self._unrefined_mask(model)  # collective (a new mesh builds it): on every rank, flagged or not
        hit = bool(np.any(unrefined[flagged])) if len(flagged) else False
        return bool(self.comm.allreduce(int(hit), op=MPI.MAX))

    def solve_step(self, model, t_new: float, h: float, step: int):
        """``model.solve(t_new, h)`` (after the caller's ``model.save_state()``);
        while the trial state has left the refined band (``escaped``: a crack
        that ran out within the step into cells of the base size), at most
        ``mesh.adapt.max_redo`` times: the band of the trial state is taken,
        the model restored to the start of the step, moved onto the base
        refined towards that band, and the step solved again there. Returns
        (the model, possibly new, with its trial state; its solve info); the
        number of redone solves is ``self.last_redo``."""
        info = model.solve(t_new, h)
        redo = 0
        while redo < self.ad.max_redo and self.escaped(model):
            band = self.band(model)
            model.restore_state()
            new = self.adapt(model, step, band)
            if new is model:
                info = model.solve(t_new, h)  # restored: solve again on the same mesh (nothing else to refine)
                break
            model = new  # adapt retired the old model's PETSc objects; the rest goes when the caller lets go of it
            model.save_state()
            info = model.solve(t_new, h)
            redo += 1
            self.log.info(f"step {step + 1} redone on the refined mesh ({redo} of at most {self.ad.max_redo})")
        self.last_redo = redo
        return model, info

    def adapt(self, model, step: int = 0, band: np.ndarray | None = None):
        """``model`` (its committed state) on the base refined towards ``band``
        (centroids, um; default: the indicator on ``model``'s fields). A step
        whose trial state escaped the refined band (``escaped``) is redone on
        the mesh of that trial state's band: ``band = adapter.band(model)``,
        ``model.restore_state()``, ``adapter.adapt(model, step, band)``, solve again.
        A new model replaces ``model``: once the state is moved, the PETSc
        objects of ``model`` that the new one does not share are destroyed
        (``numerics.memory.retire``; their number in ``last_retired``), so
        ``model`` must not be solved again."""
        t0 = time.perf_counter()
        band = self.band(model) if band is None else band
        dofs_now = model.dofs()
        per_vertex = dofs_now / max(1, model.domain.mesh.geometry.index_map().size_global)
        tm, level, capped = self.refined_base(band, per_vertex)
        est = int(per_vertex * tm.global_vertices())
        if self._same_mesh(tm, model.domain.mesh):
            self.log.info(f"remesh at step {step}: mesh unchanged ({tm.global_cells()} cells)")
            return model
        from dolfinx import mesh as dmesh

        try:
            ghosted = redistribute(tm, dmesh.GhostMode.shared_facet)
            domain = self.make_domain(ghosted)
            new = self.build(domain)
            stats = transfer_state(model, new, self.padding())
        except AdaptError:
            raise
        except Exception as exc:  # noqa: BLE001  a failed remesh stops the run with the old model intact
            raise AdaptError(f"mesh.adapt: remesh at step {step} failed: {type(exc).__name__}: {exc}") from exc
        self.last_retired = retire(model, new, self.comm)
        self.remeshes += 1
        domain.info["remesh"] = self.remeshes
        rec = {"step": step, "remesh": self.remeshes, "levels": level, "cells": tm.global_cells(),
               "band_cells": len(band), "dofs_before": int(dofs_now), "dofs": int(new.dofs()),
               "dofs_estimate": est, "capped": capped, "wall_s": time.perf_counter() - t0, **stats}
        self.records.append(rec)
        metal = (f"; metal volume error {stats['metal_rel_error_raw']:.2e} (raw), {stats['metal_rel_error']:.1e} "
                 f"after the correction" if "metal_rel_error" in stats else "")
        self.log.info(f"remesh {self.remeshes} at step {step}: {len(band)} band cells, {level} level(s), "
                      f"{rec['cells']} cells, DOFs {dofs_now} -> {rec['dofs']}{metal} ({rec['wall_s']:.1f} s)")
        return new

    def padding(self) -> float:
        return 1e-8 * max(self.base_domain.width, self.base_domain.height)

    def _same_mesh(self, tm: TaggedMesh, msh) -> bool:
        from dolfinx import mesh as dmesh

        a = tm.global_cells() == msh.topology.index_map(msh.topology.dim).size_global
        if not a:
            return False

        def moment(m):
            n = m.topology.index_map(m.topology.dim).size_local
            c = dmesh.compute_midpoints(m, m.topology.dim, np.arange(n, dtype=np.int32))
            return self.comm.allreduce(float(np.sum(c[:, 0] ** 2 + 1.7 * c[:, 1] ** 2 + 0.3 * c[:, 0] * c[:, 1])),
                                       op=MPI.SUM)

        m1, m2 = moment(tm.mesh), moment(msh)
        return abs(m1 - m2) <= 1e-10 * abs(m1)

    def refined_base(self, band: np.ndarray, per_vertex: float):
        """The base refined towards ``band`` (centroids, um): (TaggedMesh, levels made, capped by max_dofs)."""
        from scipy.spatial import cKDTree

        tm, level, capped = self.base, 0, False
        if len(band) == 0:
            return tm, 0, False
        tree = cKDTree(band[:, : tm.mesh.geometry.dim])
        margin = self.ad.margin / _length_unit()
        for level in range(1, self.ad.levels + 1):
            n = tm.n_owned()
            cen, radius, edge = cell_geometry(tm.mesh)
            dist, _ = tree.query(cen[:n, : tm.mesh.geometry.dim], distance_upper_bound=margin + radius[:n].max(initial=0) + 1e-12)
            mark = np.flatnonzero((dist <= margin + radius[:n]) & (edge[:n] > self.h_min * (1.0 + 1e-9)))
            if self.comm.allreduce(len(mark), op=MPI.SUM) == 0:
                return tm, level - 1, capped
            nxt = refine_once(tm, mark.astype(np.int32))
            est = per_vertex * nxt.global_vertices()
            if self.ad.max_dofs and est > self.ad.max_dofs:
                self.log.info(f"mesh.adapt.max_dofs = {self.ad.max_dofs}: refinement stopped at level {level - 1} "
                              f"(level {level} would have about {int(est)} DOFs)")
                return tm, level - 1, True
            tm = nxt
        return tm, self.ad.levels, capped

    def make_domain(self, tm: TaggedMesh):
        from dolfinx import fem
        from dolfinx import mesh as dmesh

        from .domain import Domain, dg0_from_cell_values, num_local_cells, tag_grain_boundaries

        msh, grain = tm.mesh, tm.grain
        tdim = msh.topology.dim
        ncell = num_local_cells(msh)
        _, band = tag_grain_boundaries(msh, grain)
        cell_tags = dmesh.meshtags(msh, tdim, np.arange(ncell, dtype=np.int32), grain)
        cell_tags.name = "grain"
        tm.facet_tags.name = "facet_tags"
        c_axis = None
        if self.c_axis is not None:
            Vv = fem.functionspace(msh, ("DG", 0, (3,)))
            c_axis = fem.Function(Vv, name="c_axis")
            dofs = Vv.dofmap.list[:ncell, 0]
            c_axis.x.array.reshape(-1, 3)[dofs] = self.c_axis[grain]
        b = self.base_domain
        info = {**b.info, "adapted": True}
        return Domain(mesh=msh, cell_tags=cell_tags, facet_tags=tm.facet_tags,
                      grain_id=dg0_from_cell_values(msh, grain.astype(float), "grain_id"),
                      theta=dg0_from_cell_values(msh, self.theta[grain], "orientation"), c_axis=c_axis,
                      gb_band=dg0_from_cell_values(msh, band, "grain_boundary_band"), n_grains=b.n_grains,
                      width=b.width, height=b.height, info=info)


def _length_unit() -> float:
    from .. import scales

    return scales.LENGTH
