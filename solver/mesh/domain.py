"""The computational domain: mesh, grain tags and per-grain orientation.

Every physics module takes a :class:`Domain`. Mesh coordinates are in
micrometres (internal length unit, see ``scales``). Tags (facet numbers:
``tags``, the one table):

    cell tags    grain id 1..N
    facet tags   1 plating_electrode (y = 0), 2 counter_electrode (y = H),
                 3 outer (other outer boundary), 4 grain_boundary,
                 5 flaw (flaw surfaces)

Orientation: ``theta`` (2D, DG0, rad) is the conduction-plane angle; the
plane normal (c-axis) is m = (-sin theta, cos theta); in 3D ``c_axis`` is a
DG0 vector field. Tensors along the planes use P = I - m m.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import ufl
from mpi4py import MPI

from dolfinx import fem, mesh as dmesh

from .tags import COUNTER_ELECTRODE, FACET_TAGS, FLAW, GRAIN_BOUNDARY, OUTER, PLATING_ELECTRODE  # noqa: F401


@dataclass
class Domain:
    """Mesh (um) + grain cell tags + facet tags + DG0 grain fields."""

    mesh: dmesh.Mesh
    cell_tags: dmesh.MeshTags
    facet_tags: dmesh.MeshTags
    grain_id: fem.Function  # DG0, 1..N
    theta: fem.Function  # DG0 conduction-plane angle [rad] (2D); zeros in 3D
    c_axis: fem.Function | None = None  # DG0 vector (3D)
    gb_band: fem.Function | None = None  # DG0 indicator: cells touching a GB facet
    n_grains: int = 1
    width: float = 1.0  # um
    height: float = 1.0  # um
    info: dict = field(default_factory=dict)  # sidecar (mesh.json) content

    @property
    def comm(self) -> MPI.Comm:
        return self.mesh.comm

    @property
    def dim(self) -> int:
        return self.mesh.geometry.dim if self.mesh.topology.dim == 3 else 2

    def plane_normal(self):
        """UFL unit normal m of the conduction planes (the c-axis)."""
        if self.mesh.topology.dim == 2:
            return ufl.as_vector((-ufl.sin(self.theta), ufl.cos(self.theta)))
        return self.c_axis

    def plane_tensors(self):
        """(P_par, P_perp) = (I - m m, m m): projectors along / across the planes."""
        m = self.plane_normal()
        eye = ufl.Identity(self.mesh.topology.dim)
        mm = ufl.outer(m, m)
        return eye - mm, mm

    def anisotropic(self, k_par, k_perp):
        """UFL tensor k_par (I - m m) + k_perp m m (conductivity, diffusivity)."""
        p_par, p_perp = self.plane_tensors()
        return k_par * p_par + k_perp * p_perp

    def measures(self):
        """(dx, ds, dS) with the grain / facet tags attached."""
        dx = ufl.Measure("dx", domain=self.mesh, subdomain_data=self.cell_tags)
        ds = ufl.Measure("ds", domain=self.mesh, subdomain_data=self.facet_tags)
        dS = ufl.Measure("dS", domain=self.mesh, subdomain_data=self.facet_tags)
        return dx, ds, dS

    def num_dofs(self, V: fem.FunctionSpace) -> int:
        return V.dofmap.index_map.size_global * V.dofmap.index_map_bs


# --------------------------------------------------------------------------
def num_local_cells(msh: dmesh.Mesh) -> int:
    imap = msh.topology.index_map(msh.topology.dim)
    return imap.size_local + imap.num_ghosts


def dg0_from_cell_values(msh: dmesh.Mesh, values: np.ndarray, name: str) -> fem.Function:
    """DG0 function with value ``values[c]`` on local cell c (owned + ghost)."""
    V = fem.functionspace(msh, ("DG", 0))
    f = fem.Function(V, name=name)
    ncell = num_local_cells(msh)
    dofs = V.dofmap.list[:ncell, 0]
    f.x.array[dofs] = values[:ncell]
    return f


def tag_grain_boundaries(msh: dmesh.Mesh, cell_grain: np.ndarray):
    """Interior facets whose two cells lie in different grains, and the
    indicator (per local cell) of cells touching such a facet.

    Needs shared-facet ghosting so both cells of every owned facet are local.
    """
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    f2c = msh.topology.connectivity(tdim - 1, tdim)
    offsets, links = f2c.offsets, f2c.array
    counts = np.diff(offsets)
    two = np.flatnonzero(counts == 2)
    c0 = links[offsets[two]]
    c1 = links[offsets[two] + 1]
    gb = two[cell_grain[c0] != cell_grain[c1]]
    band = np.zeros(len(cell_grain), dtype=np.float64)
    band[links[offsets[gb]]] = 1.0
    band[links[offsets[gb] + 1]] = 1.0
    return gb.astype(np.int32), band


def make_facet_tags(msh: dmesh.Mesh, groups: dict[int, np.ndarray]) -> dmesh.MeshTags:
    """MeshTags from {tag: facets}; a facet in two groups is an error."""
    tdim = msh.topology.dim
    ents = np.concatenate([np.asarray(v, dtype=np.int32) for v in groups.values()] or [np.zeros(0, np.int32)])
    vals = np.concatenate([np.full(len(v), k, dtype=np.int32) for k, v in groups.items()] or [np.zeros(0, np.int32)])
    if len(np.unique(ents)) != len(ents):
        raise RuntimeError("a facet was given two tags")
    order = np.argsort(ents)
    return dmesh.meshtags(msh, tdim - 1, ents[order], vals[order])


def box_boundary_facets(msh: dmesh.Mesh, height: float, tol: float = 1e-9):
    """(plating y=0, counter y=H, other outer) boundary facets."""
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    bnd = dmesh.exterior_facet_indices(msh.topology)
    mid = dmesh.compute_midpoints(msh, tdim - 1, bnd)
    scale = max(height, 1.0)
    bottom = bnd[np.abs(mid[:, 1]) < tol * scale]
    top = bnd[np.abs(mid[:, 1] - height) < tol * scale]
    other = np.setdiff1d(bnd, np.concatenate([bottom, top]))
    return bottom, top, other


def rectangle_domain(cfg, comm: MPI.Comm = MPI.COMM_WORLD) -> Domain:
    """Structured rectangle; grains (optional) by nearest random seed per cell.

    A stand-in microstructure that needs no gmsh: cells are assigned to the
    nearest of N random seeds (a pixelated Voronoi tessellation).
    """
    from meshes.orientation import grain_angles

    from .. import scales

    m = cfg.mesh
    W, H = scales.length(m.width), scales.length(m.height)
    if m.structured:
        ny = m.structured
    else:
        ny = max(2, int(round(H / scales.length(m.h))))
    nx = max(2, int(round(ny * W / H)))
    msh = dmesh.create_rectangle(
        comm, [np.array([0.0, 0.0]), np.array([W, H])], [nx, ny],
        dmesh.CellType.triangle, ghost_mode=dmesh.GhostMode.shared_facet,
        diagonal=dmesh.DiagonalType[m.diagonal.replace("/", "_")],
    )
    tdim = msh.topology.dim
    ncell = num_local_cells(msh)
    n = m.grains or 1
    if n > 1:
        rng = np.random.default_rng(m.seed)
        seeds = rng.uniform([0.0, 0.0], [W, H], size=(n, 2))
        mid = dmesh.compute_midpoints(msh, tdim, np.arange(ncell, dtype=np.int32))[:, :2]
        d2 = ((mid[:, None, :] - seeds[None, :, :]) ** 2).sum(axis=2)
        grain = np.argmin(d2, axis=1).astype(np.int32) + 1
    else:
        grain = np.ones(ncell, dtype=np.int32)
    angles = grain_angles(n, m.orientation.mode, m.orientation.seed, m.orientation.angles)
    gb, band = tag_grain_boundaries(msh, grain)
    bottom, top, other = box_boundary_facets(msh, H)
    facet_tags = make_facet_tags(
        msh, {PLATING_ELECTRODE: bottom, COUNTER_ELECTRODE: top, OUTER: other, GRAIN_BOUNDARY: gb}
    )
    cell_tags = dmesh.meshtags(msh, tdim, np.arange(ncell, dtype=np.int32), grain)
    return Domain(
        mesh=msh,
        cell_tags=cell_tags,
        facet_tags=facet_tags,
        grain_id=dg0_from_cell_values(msh, grain.astype(float), "grain_id"),
        theta=dg0_from_cell_values(msh, angles[grain - 1], "orientation"),
        gb_band=dg0_from_cell_values(msh, band, "grain_boundary_band"),
        n_grains=n,
        width=W,
        height=H,
        info={"kind": "rectangle", "angles": angles.tolist()},
    )


__all__ = ["Domain", "rectangle_domain", "FACET_TAGS", "PLATING_ELECTRODE", "COUNTER_ELECTRODE", "OUTER",
           "GRAIN_BOUNDARY", "FLAW"]
