"""gmsh polycrystals -> DOLFINx Domain, and ``solver mesh``.

The geometry comes from ``meshes`` (Voronoi, single crystal, bicrystal,
3D Voronoi, or a mesh.msh + mesh.json written earlier). gmsh runs on rank
0 only; the mesh is distributed with shared-facet ghosting (both cells of
every owned interior facet are local, so grain-boundary dS integrals are
right in parallel). Grain id and orientation become DG0 functions on every
rank. Coordinates are micrometres.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

from ..config import ConfigError
from .tags import FACET_TAGS

CELL_COLORMAP = "twilight"  # cyclic: theta and theta + pi are the same planes


# --------------------------------------------------------------------------
# the one place that touches dolfinx.io.gmshio (its API changes in 0.10)
# --------------------------------------------------------------------------
def gmsh_model_to_mesh(model, comm: MPI.Comm, rank: int, gdim: int):
    """(mesh, cell_tags, facet_tags) from the gmsh model on ``rank``,
    partitioned with GhostMode.shared_facet."""
    from dolfinx import mesh as dmesh
    from dolfinx.io import gmshio

    partitioner = dmesh.create_cell_partitioner(dmesh.GhostMode.shared_facet)
    out = gmshio.model_to_mesh(model, comm, rank, gdim=gdim, partitioner=partitioner)
    if hasattr(out, "mesh"):  # DOLFINx >= 0.10: MeshData
        return out.mesh, out.cell_tags, out.facet_tags
    return out[0], out[1], out[2]


# --------------------------------------------------------------------------
def _bcast_or_raise(comm: MPI.Comm, fn, *args):
    """Run fn on rank 0, broadcast its result; re-raise a ConfigError (or a
    generic failure) on every rank so nobody hangs in a collective."""
    result, err = None, None
    if comm.rank == 0:
        try:
            result = fn(*args)
        except ConfigError as exc:
            err = ("config", exc.problems)
        except Exception as exc:  # noqa: BLE001 - re-raised on all ranks
            err = ("runtime", f"{type(exc).__name__}: {exc}")
    err = comm.bcast(err, root=0)
    if err is not None:
        if err[0] == "config":
            raise ConfigError(err[1])
        raise RuntimeError(f"mesh generation failed on rank 0: {err[1]}")
    return comm.bcast(result, root=0)


def make_record(cfg) -> dict:
    """Sidecar of the configured mesh (no gmsh yet); ConfigError on bad input."""
    from meshes.generate import make_record as _make

    return _make(cfg.mesh)


def _mesh_on_rank0(rec: dict, msh_path: Path | None, verbose: bool):
    """Inside an open gmsh session on rank 0: build or open the model.
    Returns the report dict (+ render arrays)."""
    import gmsh

    from meshes.build import element_arrays
    from meshes.generate import build

    t0 = time.perf_counter()
    if rec.get("source_file"):
        gmsh.open(rec["source_file"])
        report = dict(rec.get("mesh", {}))
    else:
        res = build(rec)
        report = res["report"]
    report["seconds"] = time.perf_counter() - t0
    if msh_path is not None:
        gmsh.option.setNumber("Mesh.Binary", 0)
        gmsh.write(str(msh_path))
    dim = int(rec["dim"])
    coords, cells, grain, _ = element_arrays(dim)
    if dim == 3:
        coords, cells, grain = _boundary_triangles(coords, cells, grain)
    from meshes.build import facet_lines

    report["_render"] = (coords, cells, grain, facet_lines(5) if dim == 2 else None)
    if verbose:
        print(f"mesh: {report.get('elements', len(cells))} elements, {report.get('nodes', len(coords))} nodes; "
              f"quality min SICN = {report.get('min_sicn', float('nan')):.3f} "
              f"(mean {report.get('mean_sicn', float('nan')):.3f}), shortest element edge "
              f"{report.get('min_edge_um', float('nan')):.3g} um; {report['seconds']:.1f} s", flush=True)
    return report


def _boundary_triangles(coords, tets, grain):
    """Faces of a tetrahedral mesh on the outer boundary (for pictures)."""
    faces = np.vstack([tets[:, [0, 1, 2]], tets[:, [0, 1, 3]], tets[:, [0, 2, 3]], tets[:, [1, 2, 3]]])
    owner = np.concatenate([grain] * 4)
    key = np.sort(faces, axis=1)
    _, inv, cnt = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    once = cnt[inv.ravel()] == 1
    return coords, faces[once], owner[once]


def load_domain(cfg, comm: MPI.Comm = MPI.COMM_WORLD, msh_path: Path | None = None, verbose: bool = False,
                _keep_render: bool = False):
    """The Domain of a gmsh kind (voronoi, single_crystal, bicrystal, file).

    Geometry and gmsh on rank 0 (ConfigError on every rank for bad input),
    mesh distributed with shared-facet ghosting; DG0 grain_id, theta (2D,
    rad), c_axis (3D), gb_band; width/height in um; info = the sidecar.
    """
    rec = _bcast_or_raise(comm, make_record, cfg)
    if verbose and comm.rank == 0:
        print(f"mesh: {rec['kind']} {rec['dim']}D, {rec['n_grains']} grains, about "
              f"{rec.get('estimated_elements', 0):,} elements expected", flush=True)
    return domain_from_record(rec, comm, msh_path=msh_path, verbose=verbose, _keep_render=_keep_render)


def domain_from_record(rec: dict, comm: MPI.Comm = MPI.COMM_WORLD, msh_path: Path | None = None,
                       verbose: bool = False, _keep_render: bool = False):
    """Mesh a sidecar record (gmsh on rank 0) and build the Domain."""
    from meshes.build import gmsh_session

    import gmsh

    dim = int(rec["dim"])
    if comm.rank == 0:
        with gmsh_session():
            try:
                report = _mesh_on_rank0(rec, msh_path, verbose)
                err = None
            except Exception as exc:  # noqa: BLE001
                report, err = None, f"{type(exc).__name__}: {exc}"
            err = comm.bcast(err, root=0)
            if err is not None:
                raise RuntimeError(f"gmsh failed: {err}")
            msh, ct, ft = gmsh_model_to_mesh(gmsh.model, comm, 0, dim)
            gmsh.model.remove()
    else:
        err = comm.bcast(None, root=0)
        if err is not None:
            raise RuntimeError(f"gmsh failed on rank 0: {err}")
        report = None
        msh, ct, ft = gmsh_model_to_mesh(None, comm, 0, dim)
    render = report.pop("_render") if report is not None else None
    report = comm.bcast(report, root=0)
    info = dict(rec)
    info["mesh"] = {**report, "ranks": comm.size} if not rec.get("source_file") else {**rec.get("mesh", {}), **report}
    dom = _domain(msh, ct, ft, info)
    if _keep_render:
        return dom, render
    return dom


def _domain(msh, ct, ft, info: dict):
    """Domain from the distributed mesh and the gmsh tags."""
    from dolfinx import fem
    from dolfinx import mesh as dmesh

    from .domain import Domain, dg0_from_cell_values, num_local_cells, tag_grain_boundaries

    tdim = msh.topology.dim
    ncell = num_local_cells(msh)
    nown = msh.topology.index_map(tdim).size_local
    # grain per local cell: owned values from the gmsh cell tags, ghosts by scatter
    V0 = fem.functionspace(msh, ("DG", 0))
    g = fem.Function(V0)
    dofs = V0.dofmap.list[:ncell, 0]
    tmp = np.zeros(ncell)
    tmp[ct.indices] = ct.values
    g.x.array[dofs[:nown]] = tmp[:nown]
    g.x.scatter_forward()
    grain = np.rint(g.x.array[dofs]).astype(np.int32)
    n = int(info["n_grains"])
    if nown and (grain[:nown].min() < 1 or grain[:nown].max() > n):
        raise RuntimeError(f"cell without a grain tag (grain ids {grain.min()}..{grain.max()}, expected 1..{n})")
    _, band = tag_grain_boundaries(msh, grain)
    cell_tags = dmesh.meshtags(msh, tdim, np.arange(ncell, dtype=np.int32), grain)
    facet_tags = dmesh.meshtags(msh, tdim - 1, ft.indices.astype(np.int32), ft.values.astype(np.int32))
    facet_tags.name = "facet_tags"
    cell_tags.name = "grain"
    dim = int(info["dim"])
    if dim == 2:
        angles = np.asarray(info["orientation"]["angles"], dtype=float)
        theta = dg0_from_cell_values(msh, angles[grain - 1], "orientation")
        c_axis = None
    else:
        theta = dg0_from_cell_values(msh, np.zeros(ncell), "orientation")
        axes = np.asarray(info["orientation"]["c_axes"], dtype=float)
        Vv = fem.functionspace(msh, ("DG", 0, (3,)))
        c_axis = fem.Function(Vv, name="c_axis")
        vd = Vv.dofmap.list[:ncell, 0]
        for k in range(3):
            c_axis.x.array[3 * vd + k] = axes[grain - 1, k]
    box = info["box"]
    return Domain(
        mesh=msh,
        cell_tags=cell_tags,
        facet_tags=facet_tags,
        grain_id=dg0_from_cell_values(msh, grain.astype(float), "grain_id"),
        theta=theta,
        c_axis=c_axis,
        gb_band=dg0_from_cell_values(msh, band, "grain_boundary_band"),
        n_grains=n,
        width=float(box[0]),
        height=float(box[1]),
        info=info,
    )


# --------------------------------------------------------------------------
# solver mesh
# --------------------------------------------------------------------------
def _json_safe(d):
    if isinstance(d, dict):
        return {k: _json_safe(v) for k, v in d.items() if not str(k).startswith("_")}
    if isinstance(d, (list, tuple)):
        return [_json_safe(v) for v in d]
    if isinstance(d, np.generic):
        return d.item()
    if isinstance(d, np.ndarray):
        return d.tolist()
    return d


def write_xdmf(dom, path: Path) -> None:
    """mesh.xdmf: mesh (um), cell tags (grain), facet tags, DG0 grain_id and
    orientation (cell data) [+ c_axis in 3D]."""
    from dolfinx import io

    dom.cell_tags.name = "grain"
    dom.facet_tags.name = "facet_tags"
    with io.XDMFFile(dom.comm, str(path), "w") as f:
        f.write_mesh(dom.mesh)
        dom.mesh.topology.create_connectivity(dom.mesh.topology.dim - 1, dom.mesh.topology.dim)
        f.write_meshtags(dom.cell_tags, dom.mesh.geometry)
        f.write_meshtags(dom.facet_tags, dom.mesh.geometry)
        f.write_function(dom.grain_id)
        f.write_function(dom.theta)
        if dom.c_axis is not None:
            f.write_function(dom.c_axis)


def _render_dolfinx(dom):
    """(points, triangles, grain) of the local owned cells gathered on rank 0
    (for kind rectangle, where there is no gmsh model)."""
    msh = dom.mesh
    tdim = msh.topology.dim
    nown = msh.topology.index_map(tdim).size_local
    x = msh.geometry.x[:, :2]
    dm = msh.geometry.dofmap[:nown]
    pts = x[dm].reshape(-1, 2)
    grain = dom.cell_tags.values[np.argsort(dom.cell_tags.indices)][:nown]
    allp = dom.comm.gather(pts, root=0)
    allg = dom.comm.gather(grain, root=0)
    if dom.comm.rank != 0:
        return None
    pts = np.vstack(allp)
    tri = np.arange(len(pts)).reshape(-1, 3)
    return pts, tri, np.concatenate(allg), None


def picture(path: Path, render, info: dict) -> str:
    """mesh.png coloured by orientation (2D: theta in deg, cyclic map; 3D:
    angle of the c-axis from the electrode normal y, deg), GBs in black."""
    from ..report.render import orientation_picture

    coords, cells, grain, flaw_lines = render
    n = int(info["n_grains"])
    if int(info["dim"]) == 2:
        val = np.degrees(np.asarray(info["orientation"]["angles"]))[grain - 1]
        name, clim, cmap = "theta [deg]", (0.0, 180.0), CELL_COLORMAP
    else:
        ax = np.asarray(info["orientation"]["c_axes"])
        val = np.degrees(np.arccos(np.clip(np.abs(ax[:, 1]), 0, 1)))[grain - 1]
        name, clim, cmap = "c-axis angle to y [deg]", (0.0, 90.0), "viridis"
    box = " x ".join(f"{b:g}" for b in info["box"])
    title = f"{info.get('name', '')} {info['kind']}: {n} grains, {box} um"
    if int(info["dim"]) == 2:
        title += " (plating electrode y = 0 at the bottom; red: flaws)"
    glyphs = None
    if int(info["dim"]) == 2 and info.get("grains"):
        # a short white segment along the conduction planes at each grain centroid
        seg = []
        for gr in info["grains"]:
            c, th = np.asarray(gr["centroid"], float), float(gr["angle"])
            half = 0.3 * np.sqrt(abs(gr["area"])) * np.array([np.cos(th), np.sin(th)])
            seg.append([[*(c - half), 0.0], [*(c + half), 0.0]])
        glyphs = np.asarray(seg)
        title = title[:-1] + "; white: conduction planes)"
    return orientation_picture(path, coords, cells, val, grain, title.strip(), name, clim, cmap,
                               dim=int(info["dim"]), extra_lines=flaw_lines, glyphs=glyphs)


def mesh_command(cfg, outdir: Path | None = None, comm: MPI.Comm = MPI.COMM_WORLD) -> int:
    """``solver mesh``: mesh.msh, mesh.json, mesh.xdmf (+ .h5), mesh.png in
    outdir (default results/<name>). Returns the exit code (0)."""
    outdir = Path(outdir) if outdir is not None else Path("results") / cfg.name
    if comm.rank == 0:
        outdir.mkdir(parents=True, exist_ok=True)
    comm.barrier()
    t0 = time.perf_counter()
    files = []
    if cfg.mesh.kind == "rectangle":
        from .domain import rectangle_domain

        dom = rectangle_domain(cfg, comm)
        tdim = dom.mesh.topology.dim
        info = {
            "schema": "nacrack.mesh", "schema_version": 1, "kind": "rectangle", "dim": 2,
            "box": [dom.width, dom.height], "n_grains": dom.n_grains,
            "units": {"coordinates": "um", "angles": "rad", "config": "SI"},
            "config": cfg.mesh.model_dump(mode="json"),
            "orientation": {"mode": cfg.mesh.orientation.mode, "seed": cfg.mesh.orientation.seed,
                            "angles": dom.info["angles"]},
            "tags": {"cells": "grain id g = 1..n_grains (nearest random seed per cell)",
                     "facets": dict(FACET_TAGS)},
            "mesh": {"elements": dom.mesh.topology.index_map(tdim).size_global,
                     "nodes": dom.mesh.geometry.index_map().size_global},
        }
        from meshes.generate import versions

        info["generator"] = versions()
        render = _render_dolfinx(dom)
        if comm.rank == 0:
            print(f"mesh: rectangle, {info['mesh']['elements']} elements (structured), {dom.n_grains} grains", flush=True)
    else:
        msh_path = outdir / "mesh.msh"
        dom, render = load_domain(cfg, comm, msh_path=msh_path if comm.rank == 0 else None, verbose=True,
                                  _keep_render=True)
        info = dom.info
        files.append("mesh.msh")
    info["name"] = cfg.name
    write_xdmf(dom, outdir / "mesh.xdmf")
    files += ["mesh.xdmf", "mesh.h5", "mesh.json", "mesh.png"]
    info["files"] = files
    if comm.rank == 0:
        from ..io.output import atomic_write_json

        atomic_write_json(outdir / "mesh.json", _json_safe(info))
        backend = picture(outdir / "mesh.png", render, info)
        print(f"mesh: wrote {', '.join(files)} to {outdir} ({backend} picture, "
              f"{time.perf_counter() - t0:.1f} s)", flush=True)
    comm.barrier()
    return 0


def read_sidecar(path: Path) -> dict:
    return json.loads(Path(path).read_text())
