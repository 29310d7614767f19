"""Mesh config (SI) -> geometry record + sidecar (micrometres), and the
gmsh model built from it.

``make_record(mesh_cfg)`` does all the geometry that needs no gmsh (seeds,
Voronoi, Lloyd, regularisation, orientation, flaws, checks) and returns the
sidecar dict; ``build(record)`` meshes it in the current gmsh model. The
sidecar alone rebuilds the mesh: ``build(json.load(open("mesh.json")))``.

Bad input raises ``solver.config.ConfigError`` (one line per problem naming
the key and value) before any heavy work.
"""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from . import flaws as flawlib
from . import voronoi
from .build import FACET_TAGS, estimate_elements, generate, gmsh_session
from .orientation import c_axes, grain_angles

SCHEMA = "nacrack.mesh"
SCHEMA_VERSION = 1
UM = 1e6  # config metres -> mesh micrometres
MIN_CELLS_ACROSS_GRAIN = 3.0  # a grain must be >= 3 h_fine across (equivalent diameter)
MIN_CELLS_ACROSS_GRAIN_3D = 2.0
MAX_ELEMENTS = 20_000_000


def _error(problems):
    from solver.config import ConfigError

    raise ConfigError(problems)


def versions() -> dict:
    import scipy

    out = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__}
    try:
        import gmsh

        out["gmsh"] = gmsh.__version__
    except ImportError:  # pragma: no cover
        out["gmsh"] = None
    try:
        from solver import __version__

        out["nacrack"] = __version__
    except ImportError:  # pragma: no cover
        out["nacrack"] = None
    return out


def _sizes(m) -> tuple[float, float, float]:
    """(h, h_fine, min_edge) in um; h_fine defaults to h, min_edge to h_fine/2."""
    h = m.h * UM
    hf = (m.h_fine or m.h) * UM
    min_edge = (m.min_edge * UM) if m.min_edge is not None else 0.5 * hf
    return h, hf, min_edge


def _box(m) -> list[float]:
    box = [m.width * UM, m.height * UM]
    if m.dim == 3:
        box.append(m.depth * UM)
    return box


def _seeds(m, box, problems) -> np.ndarray | None:
    """Voronoi seeds [um]: from seeds_file (m) or uniform random."""
    if m.seeds_file:
        path = Path(m.seeds_file)
        if not path.is_file():
            problems.append(f"mesh.seeds_file = {m.seeds_file!r}: file not found")
            return None
        try:
            pts = np.loadtxt(path, ndmin=2) * UM
        except ValueError as exc:
            problems.append(f"mesh.seeds_file = {m.seeds_file!r}: not a table of numbers ({exc})")
            return None
        if pts.shape[1] != len(box):
            problems.append(f"mesh.seeds_file = {m.seeds_file!r}: {pts.shape[1]} columns, expected {len(box)} (x y"
                            f"{' z' if len(box) == 3 else ''} in metres)")
            return None
        inside = np.all((pts > 0) & (pts < np.asarray(box)), axis=1)
        if not inside.all():
            k = int(np.flatnonzero(~inside)[0])
            problems.append(f"mesh.seeds_file = {m.seeds_file!r}: seed {k + 1} at {(pts[k] / UM).tolist()} m is not "
                            f"strictly inside the box {[b / UM for b in box]} m")
            return None
        if m.grains is not None and m.grains != len(pts):
            problems.append(f"mesh.grains = {m.grains}: the seeds file has {len(pts)} seeds")
            return None
        if len(np.unique(np.round(pts / max(box) * 1e12), axis=0)) != len(pts):
            problems.append(f"mesh.seeds_file = {m.seeds_file!r}: two seeds coincide")
            return None
        return pts
    n = m.grains if m.grains is not None else voronoi.grains_from_size(m.grain_size * UM, box)
    return voronoi.random_seeds(n, box, m.seed)


def check(m) -> tuple[list[str], dict]:
    """Problems with the mesh section (one line each) and derived values."""
    problems: list[str] = []
    box = _box(m)
    h, hf, min_edge = _sizes(m)
    derived = {"box": box, "h": h, "h_fine": hf, "min_edge": min_edge}
    if h > 0.5 * min(box):
        problems.append(f"mesh.h = {m.h:g} m: larger than half the smallest box side ({min(box) / UM / 2:g} m); "
                        "expected a smaller element size")
    if m.kind == "voronoi":
        n = m.grains if m.grains is not None else (
            voronoi.grains_from_size(m.grain_size * UM, box) if m.grain_size else None)
        if m.seeds_file is None and n is not None:
            vol = float(np.prod(box))
            d_eq = (4 * vol / (np.pi * n)) ** 0.5 if m.dim == 2 else (6 * vol / (np.pi * n)) ** (1 / 3)
            across = MIN_CELLS_ACROSS_GRAIN if m.dim == 2 else MIN_CELLS_ACROSS_GRAIN_3D
            if d_eq < across * hf:
                n_max = int(vol / ((np.pi / 4) * (across * hf) ** 2)) if m.dim == 2 else int(
                    vol / ((np.pi / 6) * (across * hf) ** 3))
                key = "mesh.grains" if m.grains is not None else "mesh.grain_size"
                val = m.grains if m.grains is not None else m.grain_size
                problems.append(
                    f"{key} = {val:g}: grains of mean diameter {d_eq / UM:.3g} m do not fit at h_fine = "
                    f"{hf / UM:g} m; expected grains at least {across:g} h_fine across "
                    f"(at most {max(n_max, 1)} grains, or a smaller mesh.h_fine)")
            derived["grains"] = n
        if m.dim == 3 and n is not None and n < 2 and m.seeds_file is None:
            problems.append(f"mesh.grains = {n}: a 3D Voronoi needs at least 2 grains (use kind single_crystal)")
    # 2D: one angle per grain (orientation.angles); 3D: one c-axis per grain (orientation.axes)
    key, given, what = (("axes", m.orientation.axes, "c-axis") if m.dim == 3 else
                        ("angles", m.orientation.angles, "angle"))
    for kind, need, name in (("bicrystal", 2, "a bicrystal"), ("single_crystal", 1, "a single crystal")):
        if m.kind == kind and m.orientation.mode == "given" and len(given or []) != need:
            problems.append(f"mesh.orientation.{key} = {given}: {name} needs {need} {what}{'s' if need > 1 else ''}")
    if m.flaws:
        if m.dim == 3:
            from . import flaws3d

            specs = [flaws3d.flaw_spec_3d(f, box[0], box[1], box[2]) for f in m.flaws]
            problems += flaws3d.check(specs, box, hf)
        else:
            specs = [flawlib.flaw_spec(f, box[0], box[1]) for f in m.flaws]
            problems += flawlib.check(specs, box[0], box[1], hf)
    if m.refine_band is not None:
        b = m.refine_band
        if not (0 <= b.x0 < b.x1 <= m.width and 0 <= b.y0 < b.y1 <= m.height):
            problems.append(f"mesh.refine_band = [{b.x0:g}, {b.x1:g}] x [{b.y0:g}, {b.y1:g}] m: expected "
                            f"0 <= x0 < x1 <= width = {m.width:g} m and 0 <= y0 < y1 <= height = {m.height:g} m")
    if m.kind == "file":
        p = Path(m.file)
        if not p.is_file():
            problems.append(f"mesh.file = {m.file!r}: file not found (expected a mesh.msh written by 'solver mesh')")
        elif not p.with_suffix(".json").is_file():
            problems.append(f"mesh.file = {m.file!r}: its sidecar {p.with_suffix('.json').name} is missing beside it")
    return problems, derived


def _flaw_specs(m, box) -> list[dict]:
    if m.dim == 2:
        return [flawlib.flaw_spec(f, box[0], box[1]) for f in m.flaws]
    from . import flaws3d

    return [flaws3d.flaw_spec_3d(f, box[0], box[1], box[2]) for f in m.flaws]


def _orientation(m, n: int, dim: int) -> dict:
    o = m.orientation
    try:
        if dim == 2:
            return {"mode": o.mode, "seed": o.seed, "angles": grain_angles(n, o.mode, o.seed, o.angles).tolist()}
        axes = getattr(o, "axes", None)
        return {"mode": o.mode, "seed": o.seed, "c_axes": c_axes(n, o.mode, o.seed, axes).tolist()}
    except ValueError as exc:
        _error([str(exc)])


def make_record(m) -> dict:
    """The sidecar of the mesh the config asks for (no gmsh needed).

    Geometry in um; orientation per grain; Voronoi statistics; the
    regularisation report; the element-count estimate.
    """
    problems, d = check(m)
    if problems:
        _error(problems)
    if m.kind == "file":
        import json

        rec = json.loads(Path(m.file).with_suffix(".json").read_text())
        rec["source_file"] = str(Path(m.file).resolve())
        return rec
    box, h, hf, min_edge = d["box"], d["h"], d["h_fine"], d["min_edge"]
    dim = m.dim
    rec: dict = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "generator": versions(),
        "units": {"coordinates": "um", "angles": "rad", "config": "SI"},
        "kind": m.kind,
        "dim": dim,
        "box": box,
        "h": h,
        "h_fine": hf,
        "refine_band": ([m.refine_band.x0 * UM, m.refine_band.x1 * UM, m.refine_band.y0 * UM, m.refine_band.y1 * UM]
                        if m.refine_band else None),
        "flaws": _flaw_specs(m, box),
        "config": m.model_dump(mode="json"),
        "tags": {
            "cells": "grain id g = 1..n_grains (physical group grain_g)",
            "facets": dict(FACET_TAGS),
        },
    }
    if m.kind == "voronoi":
        problems = []
        seeds = _seeds(m, box, problems)
        if problems:
            _error(problems)
        rec["seed"] = m.seed
        rec["seeds_initial"] = seeds.tolist()
        if dim == 2:
            seeds = voronoi.lloyd_2d(seeds, box[0], box[1], m.lloyd_iterations)
        else:
            seeds = voronoi.lloyd_3d(seeds, box, m.lloyd_iterations)
        rec["lloyd_iterations"] = m.lloyd_iterations
        if dim == 2:
            _voronoi_2d(rec, seeds, box, min_edge, m)
        else:
            _voronoi_3d(rec, seeds, box, m, min_edge)
    elif m.kind in ("single_crystal", "bicrystal"):
        W, H = box[:2]
        if dim == 2:
            if m.kind == "single_crystal":
                rec["vertices"] = [[0, 0], [W, 0], [W, H], [0, H]]
                rec["cells"] = [[0, 1, 2, 3]]
            else:
                rec["vertices"] = [[0, 0], [W / 2, 0], [W, 0], [W, H], [W / 2, H], [0, H]]
                rec["cells"] = [[0, 1, 4, 5], [1, 2, 3, 4]]
            verts = np.asarray(rec["vertices"], float)
            _grain_table(rec, [verts[c] for c in rec["cells"]])
        else:
            D = box[2]
            rec["boxes"] = ([[0, 0, 0, W, H, D]] if m.kind == "single_crystal"
                            else [[0, 0, 0, W / 2, H, D], [W / 2, 0, 0, W / 2, H, D]])
            n = len(rec["boxes"])
            rec["grains"] = [{"id": g + 1, "volume": W * H * D / n,
                              "centroid": [(g + 0.5) * W / n, H / 2, D / 2],
                              "neighbours": [2 - g] if n == 2 else []} for g in range(n)]
        rec["seeds"] = None
    else:
        _error([f"mesh.kind = {m.kind!r}: not a gmsh kind (rectangle is built by solver.mesh.domain)"])
    n = len(rec["grains"])
    rec["n_grains"] = n
    ori = _orientation(m, n if not rec.get("_removed_seed_index") else len(rec["seeds"]), dim)
    rec["orientation"] = ori
    _drop_removed(rec)
    for g, gr in enumerate(rec["grains"]):
        if dim == 2:
            gr["angle"] = rec["orientation"]["angles"][g]
        else:
            gr["c_axis"] = rec["orientation"]["c_axes"][g]
    if dim == 2 and rec["flaws"]:
        _remove_swallowed_grains(rec)
    rec["estimated_elements"] = estimate_elements(rec)
    if rec["estimated_elements"] > MAX_ELEMENTS:
        _error([f"mesh.h = {m.h:g} m: about {rec['estimated_elements']:,} elements expected, more than "
                f"{MAX_ELEMENTS:,}; expected a larger mesh.h / mesh.h_fine"])
    return rec


def _grain_table(rec, polys, seeds=None, voronoi_areas=None, neighbours=None):
    grains = []
    for g, p in enumerate(polys):
        a = voronoi.polygon_area(p)
        gr = {"id": g + 1, "area": a, "centroid": voronoi.polygon_centroid(p).tolist()}
        if voronoi_areas is not None:
            gr["voronoi_area"] = float(voronoi_areas[g])
            gr["area_change"] = float(a - voronoi_areas[g])
        gr["neighbours"] = [k + 1 for k in neighbours[g]] if neighbours is not None else (
            [2 - g] if len(polys) == 2 else [])
        if seeds is not None:
            gr["seed"] = seeds[g].tolist()
        grains.append(gr)
    rec["grains"] = grains


def _voronoi_2d(rec, seeds, box, min_edge, m):
    raw = voronoi.clipped_voronoi_2d(seeds, box[0], box[1])
    t = voronoi.regularise_2d(raw, min_edge) if min_edge > 0 else raw
    rec["seeds"] = seeds.tolist()
    rec["vertices"] = t.vertices.tolist()
    rec["cells"] = [c.tolist() for c in t.cells]
    _grain_table(rec, [t.polygon(g) for g in range(t.n)], t.seeds, t.voronoi_areas, t.neighbours())
    rel = np.abs(t.areas() - t.voronoi_areas) / t.voronoi_areas
    removed_area = float(sum(raw.voronoi_areas[k] for k in t.removed))
    rec["regularisation"] = {
        "min_edge_um": min_edge,
        "collapsed_edges": t.collapsed_edges,
        "removed_grains_seed_index": list(t.removed),
        "removed_area_um2": removed_area,
        "max_relative_area_change": float(rel.max()) if len(rel) else 0.0,
        "mean_relative_area_change": float(rel.mean()) if len(rel) else 0.0,
    }
    rec["grains_requested"] = len(seeds)
    # orientation is drawn for all seeds, then the removed ones are dropped
    rec["_kept"] = t.kept.tolist()
    if t.removed:
        rec["_removed_seed_index"] = list(t.removed)


def _drop_removed(rec):
    kept = rec.pop("_kept", None)
    if rec.pop("_removed_seed_index", None) is None or kept is None:
        return
    if "angles" in rec["orientation"]:
        rec["orientation"]["angles"] = [rec["orientation"]["angles"][k] for k in kept]
    rec["seeds"] = [rec["seeds"][k] for k in kept] if len(rec["seeds"]) > len(kept) else rec["seeds"]


def _remove_swallowed_grains(rec):
    """Grains entirely inside a hole flaw (all vertices inside a convex
    flaw) are dropped and the rest renumbered 1..n."""
    V = np.asarray(rec["vertices"], float)
    H = rec["box"][1]
    gone = []
    for g, cyc in enumerate(rec["cells"]):
        for f in rec["flaws"]:
            if not f["filled_with_na"] and flawlib.inside(f, V[cyc], H, pad=1e-9 * H).all():
                gone.append(g)
                break
    if not gone:
        return
    keep = [g for g in range(len(rec["cells"])) if g not in gone]
    new_id = {g + 1: i + 1 for i, g in enumerate(keep)}
    rec["cells"] = [rec["cells"][g] for g in keep]
    grains = []
    for g in keep:
        gr = dict(rec["grains"][g])
        gr["id"] = new_id[g + 1]
        gr["neighbours"] = [new_id[k] for k in gr["neighbours"] if k in new_id]
        grains.append(gr)
    rec["grains"] = grains
    if "angles" in rec["orientation"]:
        rec["orientation"]["angles"] = [rec["orientation"]["angles"][g] for g in keep]
    if rec.get("seeds"):
        rec["seeds"] = [rec["seeds"][g] for g in keep]
    rec["n_grains"] = len(keep)
    rec.setdefault("regularisation", {})["grains_inside_hole_flaws"] = [g + 1 for g in gone]


def _voronoi_3d(rec, seeds, box, m, min_edge=0.0):
    t = voronoi.clipped_voronoi_3d(seeds, box)
    reg_report = None
    if min_edge > 0:
        from .regularise3d import regularise_3d

        t, reg_report = regularise_3d(t, min_edge)
    rec["seeds"] = seeds.tolist()
    rec["vertices"] = t.vertices.tolist()
    rec["faces"] = [[c.tolist(), int(a), int(b)] for c, a, b in t.faces]
    rec["cells"] = [list(map(int, c)) for c in t.cells]
    vol = t.volumes()
    nb = t.neighbours()
    rec["grains"] = [{"id": g + 1, "volume": float(vol[g]), "seed": seeds[g].tolist(),
                      "neighbours": [k + 1 for k in nb[g]]} for g in range(t.n)]
    edges = {}
    for cyc, _, _ in t.faces:
        for a, b in zip(cyc, np.roll(cyc, -1)):
            edges[(min(a, b), max(a, b))] = np.linalg.norm(t.vertices[a] - t.vertices[b])
    rec["regularisation"] = reg_report or {"note": "short-edge regularisation off (mesh.min_edge = 0)",
                                           "min_edge_um": 0.0}
    rec["regularisation"]["shortest_edge_um"] = float(min(edges.values()))
    rec["regularisation"]["edges"] = len(edges)
    rec["grains_requested"] = len(seeds)


def build(rec: dict) -> dict:
    """Mesh the record in the current gmsh model (see meshes.build)."""
    return generate(rec)


def mesh_record(rec: dict, msh_path: str | None = None) -> dict:
    """Open a gmsh session, mesh the record, optionally write the .msh,
    return the build result (report in result['report'])."""
    import gmsh

    with gmsh_session():
        res = build(rec)
        if msh_path:
            gmsh.write(str(msh_path))
    return res
