"""gmsh OCC model of a polycrystal from a geometry record (micrometres).

The record (``spec``, also the geometry part of the sidecar mesh.json):

    dim 2: box [W, H]; vertices [[x, y], ...]; cells [[vertex ids, ccw], ...]
    dim 3: box [W, H, D]; either vertices + faces [[cycle], a, b] + cells
           [[face ids], ...] (Voronoi) or boxes [[x0, y0, z0, dx, dy, dz], ...]
    flaws [flaw dicts, see meshes.flaws] (2D), h, h_fine, refine_band
    [x0, x1, y0, y1] or null.

Grain g (1-based) is cells[g - 1]. Grains are built as OCC surfaces
(volumes) sharing their points and lines, hole flaws are cut out, and
everything is fragmented into one conforming model. Which output entity
belongs to which grain is read from the maps that ``cut`` and ``fragment``
return, never from tag numbers. Physical groups:

    dim = 2 (3): grain g -> tag g, name grain_g
    dim = 1 (2): 1 plating_electrode (y = 0), 2 counter_electrode (y = H),
                 3 outer (x = 0, x = W; z = 0, z = D), 4 grain_boundary,
                 5 flaw (flaw outlines, holes and Na-filled)

Each boundary entity is in exactly one group.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import numpy as np

from . import flaws as flawlib

FACET_TAGS = {
    "plating_electrode": 1,
    "counter_electrode": 2,
    "outer": 3,
    "grain_boundary": 4,
    "flaw": 5,
}
FACET_NAMES = {v: k for k, v in FACET_TAGS.items()}


@contextmanager
def gmsh_session(verbosity: int = 2):
    """gmsh initialised (if it is not already) with deterministic options:
    one thread, fixed random seed. Finalised on exit if we started it."""
    import gmsh

    started = not gmsh.isInitialized()
    if started:
        gmsh.initialize(interruptible=False)
    try:
        gmsh.option.setNumber("General.Terminal", 1)
        gmsh.option.setNumber("General.Verbosity", verbosity)
        gmsh.option.setNumber("General.NumThreads", 1)
        gmsh.option.setNumber("Mesh.MaxNumThreads1D", 1)
        gmsh.option.setNumber("Mesh.MaxNumThreads2D", 1)
        gmsh.option.setNumber("Mesh.MaxNumThreads3D", 1)
        gmsh.option.setNumber("Mesh.RandomSeed", 1)
        gmsh.option.setNumber("Geometry.OCCParallel", 0)
        gmsh.model.add("polycrystal")
        yield gmsh
    finally:
        if started:
            gmsh.finalize()


# --------------------------------------------------------------------------
# geometry
# --------------------------------------------------------------------------
def _grains_2d(spec) -> list[list[tuple[int, int]]]:
    """Plane surfaces of the grain polygons, sharing points and lines."""
    import gmsh

    occ = gmsh.model.occ
    V = np.asarray(spec["vertices"], dtype=float)
    pts = {}
    lines = {}
    grains = []
    for cyc in spec["cells"]:
        loop = []
        for a, b in zip(cyc, list(cyc[1:]) + [cyc[0]]):
            for v in (a, b):
                if v not in pts:
                    pts[v] = occ.addPoint(V[v, 0], V[v, 1], 0.0)
            key = (min(a, b), max(a, b))
            if key not in lines:
                lines[key] = occ.addLine(pts[key[0]], pts[key[1]])
            loop.append(lines[key] if a < b else -lines[key])
        s = occ.addPlaneSurface([occ.addCurveLoop(loop)])
        grains.append([(2, s)])
    return grains


def _grains_3d(spec) -> list[list[tuple[int, int]]]:
    """Volumes of the grain polyhedra (shared points, lines, faces) or boxes."""
    import gmsh

    occ = gmsh.model.occ
    if spec.get("boxes"):
        return [[(3, occ.addBox(*b))] for b in spec["boxes"]]
    V = np.asarray(spec["vertices"], dtype=float)
    pts, lines, faces = {}, {}, {}
    for k, (cyc, _a, _b) in enumerate(spec["faces"]):
        loop = []
        for a, b in zip(cyc, list(cyc[1:]) + [cyc[0]]):
            for v in (a, b):
                if v not in pts:
                    pts[v] = occ.addPoint(*V[v])
            key = (min(a, b), max(a, b))
            if key not in lines:
                lines[key] = occ.addLine(pts[key[0]], pts[key[1]])
            loop.append(lines[key] if a < b else -lines[key])
        faces[k] = occ.addPlaneSurface([occ.addCurveLoop(loop)])
    grains = []
    for cell in spec["cells"]:
        sl = occ.addSurfaceLoop([faces[k] for k in cell])
        grains.append([(3, occ.addVolume([sl]))])
    return grains


def build_geometry(spec) -> dict:
    """Build, cut, fragment and tag the OCC model. Returns the entity maps:
    ``grain_entities`` {g: [tags]}, ``facet_entities`` {facet tag: [tags]}."""
    import gmsh

    occ = gmsh.model.occ
    dim = int(spec["dim"])
    box = [float(x) for x in spec["box"]]
    H = box[1]
    grains = _grains_2d(spec) if dim == 2 else _grains_3d(spec)
    objs = [dt for g in grains for dt in g]
    owner = [g + 1 for g, ents in enumerate(grains) for _ in ents]
    flaw_list = spec.get("flaws") or []
    if dim == 2:
        def solid(f):
            return (2, flawlib.occ_surface(f, H))
    else:  # 3D flaws: notch (surface pit), slot, penny crack, pore (meshes.flaws3d)
        from . import flaws3d

        def solid(f):
            return (3, flaws3d.occ_volume(f, H, box[2]))
    holes = [solid(f) for f in flaw_list if not f["filled_with_na"]]
    filled = [solid(f) for f in flaw_list if f["filled_with_na"]]
    if holes:
        _, omap = occ.cut(objs, holes, removeObject=True, removeTool=True)
        new_objs, new_owner = [], []
        for i, pieces in enumerate(omap[: len(objs)]):
            new_objs += pieces
            new_owner += [owner[i]] * len(pieces)
        objs, owner = new_objs, new_owner
    if len(objs) + len(filled) > 1:
        _, omap = occ.fragment(objs, filled, removeObject=True, removeTool=True)
    else:  # a single entity: nothing to fragment (gmsh would skip it)
        omap = [[dt] for dt in objs]
    grain_of: dict[int, int] = {}
    for i, pieces in enumerate(omap[: len(objs)]):
        for d, t in pieces:
            if grain_of.get(t, owner[i]) != owner[i]:
                raise RuntimeError(f"entity {t} belongs to grains {grain_of[t]} and {owner[i]}")
            grain_of[t] = owner[i]
    filled_pieces = sorted({dt for pieces in omap[len(objs):] for dt in pieces})
    # parts of a filled flaw outside the box (a notch drawn through the
    # electrode) belong to no grain: remove them
    outside = [dt for dt in filled_pieces if dt[1] not in grain_of]
    if outside:
        occ.remove(outside, recursive=True)
        filled_pieces = [dt for dt in filled_pieces if dt[1] in grain_of]
    occ.synchronize()

    top = gmsh.model.getEntities(dim)
    missing = [t for _, t in top if t not in grain_of]
    if missing:
        raise RuntimeError(f"entities {missing} of dimension {dim} belong to no grain")
    n = len(spec["cells"]) if not spec.get("boxes") else len(spec["boxes"])
    grain_entities = {g: sorted(t for t, o in grain_of.items() if o == g) for g in range(1, n + 1)}
    empty = [g for g, ents in grain_entities.items() if not ents]
    if empty:
        raise RuntimeError(f"grains {empty} were removed entirely by the flaws")
    outline = set()
    if filled_pieces:
        outline = {abs(t) for _, t in gmsh.model.getBoundary(filled_pieces, combined=True, oriented=False)}

    tol = 1e-6 * max(box)
    facets = {k: [] for k in FACET_TAGS.values()}
    same_grain_interfaces = 0
    for _, e in gmsh.model.getEntities(dim - 1):
        up, _ = gmsh.model.getAdjacencies(dim - 1, e)
        up = [u for u in up if u in grain_of]
        if len(up) == 1:
            lo = gmsh.model.getBoundingBox(dim - 1, e)
            lo, hi = np.array(lo[:3]), np.array(lo[3:])
            if hi[1] < tol:
                tag = 1
            elif lo[1] > H - tol:
                tag = 2
            elif any(hi[a] < tol or lo[a] > box[a] - tol for a in range(dim) if a != 1):
                tag = 3
            else:
                tag = 5  # a hole flaw
        elif len(up) == 2:
            if e in outline:
                tag = 5
            elif grain_of[up[0]] != grain_of[up[1]]:
                tag = 4
            else:
                same_grain_interfaces += 1
                continue
        else:
            raise RuntimeError(f"entity ({dim - 1}, {e}) borders {len(up)} grains pieces")
        facets[tag].append(e)
    for g, ents in grain_entities.items():
        gmsh.model.addPhysicalGroup(dim, ents, tag=g)
        gmsh.model.setPhysicalName(dim, g, f"grain_{g}")
    for name, tag in FACET_TAGS.items():
        if facets[tag]:
            gmsh.model.addPhysicalGroup(dim - 1, facets[tag], tag=tag)
            gmsh.model.setPhysicalName(dim - 1, tag, name)
    return {
        "grain_entities": grain_entities,
        "facet_entities": facets,
        "same_grain_interfaces": same_grain_interfaces,
    }


# --------------------------------------------------------------------------
# size fields
# --------------------------------------------------------------------------
def transition(h: float, h_fine: float) -> tuple[float, float]:
    """(DistMin, DistMax) of the size ramp h_fine -> h: fine within h_fine of
    the feature, then growing with slope 1/2 (neighbour ratio ~1.5)."""
    return h_fine, h_fine + 2.0 * (h - h_fine)


def set_size_fields(spec, entities: dict) -> None:
    """Background size: min(threshold on the distance to grain boundaries and
    flaws: h_fine -> h, box field h_fine inside the refine band)."""
    import gmsh

    h, hf = float(spec["h"]), float(spec["h_fine"])
    dim = int(spec["dim"])
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
    gmsh.option.setNumber("Mesh.MeshSizeMax", h)
    gmsh.option.setNumber("Mesh.MeshSizeMin", 0.0)
    if hf >= h * (1 - 1e-12):
        return
    field = gmsh.model.mesh.field
    fields = []
    fine = entities["facet_entities"][4] + entities["facet_entities"][5]
    if fine:
        dmin, dmax = transition(h, hf)
        fd = field.add("Distance")
        if dim == 2:
            field.setNumbers(fd, "CurvesList", fine)
            longest = max(gmsh.model.occ.getMass(1, c) for c in fine)
        else:
            field.setNumbers(fd, "SurfacesList", fine)
            longest = max(np.sqrt(gmsh.model.occ.getMass(2, c)) for c in fine)
        field.setNumber(fd, "Sampling", int(min(max(20, 2 * longest / hf), 400)))
        ft = field.add("Threshold")
        field.setNumber(ft, "InField", fd)
        field.setNumber(ft, "SizeMin", hf)
        field.setNumber(ft, "SizeMax", h)
        field.setNumber(ft, "DistMin", dmin)
        field.setNumber(ft, "DistMax", dmax)
        fields.append(ft)
    band = spec.get("refine_band")
    if band:
        fb = field.add("Box")
        field.setNumber(fb, "VIn", hf)
        field.setNumber(fb, "VOut", h)
        field.setNumber(fb, "XMin", band[0])
        field.setNumber(fb, "XMax", band[1])
        field.setNumber(fb, "YMin", band[2])
        field.setNumber(fb, "YMax", band[3])
        if dim == 3:
            field.setNumber(fb, "ZMin", -1.0)
            field.setNumber(fb, "ZMax", float(spec["box"][2]) + 1.0)
        field.setNumber(fb, "Thickness", 2.0 * (h - hf))
        fields.append(fb)
    if fields:
        fm = field.add("Min")
        field.setNumbers(fm, "FieldsList", fields)
        field.setAsBackgroundMesh(fm)


# --------------------------------------------------------------------------
# meshing, quality, hash
# --------------------------------------------------------------------------
def generate(spec) -> dict:
    """Geometry + size fields + mesh in the current gmsh model. Returns
    entity maps and a mesh report (element count, SICN, edge lengths, hash,
    per-grain area (2D) or volume (3D) of the OCC geometry and of the mesh)."""
    import gmsh

    dim = int(spec["dim"])
    gmsh.option.setNumber("Mesh.Algorithm", 6)  # Frontal-Delaunay (2D)
    gmsh.option.setNumber("Mesh.Algorithm3D", 1)  # Delaunay (3D)
    if dim == 3:
        gmsh.option.setNumber("Mesh.Optimize", 1)
        gmsh.option.setNumber("Mesh.OptimizeNetgen", 0)
    ents = build_geometry(spec)
    set_size_fields(spec, ents)
    gmsh.model.mesh.generate(dim)
    report = mesh_report(spec, ents)
    return {**ents, "report": report}


def element_arrays(dim: int):
    """(node coords (n, 3), cells (m, k) as row indices into coords, grain
    of each cell) of the top-dimensional elements in the physical groups."""
    import gmsh

    tags, coords, _ = gmsh.model.mesh.getNodes()
    coords = coords.reshape(-1, 3)
    order = np.argsort(tags)
    tags, coords = tags[order], coords[order]
    cells, grain, etags = [], [], []
    for _, g in gmsh.model.getPhysicalGroups(dim):
        for e in gmsh.model.getEntitiesForPhysicalGroup(dim, g):
            types, et, en = gmsh.model.mesh.getElements(dim, e)
            for t, ee, nn in zip(types, et, en):
                k = gmsh.model.mesh.getElementProperties(t)[3]
                cells.append(np.searchsorted(tags, nn).reshape(-1, k)[:, : dim + 1])
                grain.append(np.full(len(ee), g, dtype=np.int32))
                etags.append(ee)
    return coords, np.vstack(cells), np.concatenate(grain), np.concatenate(etags)


def facet_lines(tag: int) -> np.ndarray:
    """2D: line elements (k, 2, 3) [node coordinates] of facet group ``tag``."""
    import gmsh

    out = []
    for d, g in gmsh.model.getPhysicalGroups(1):
        if g != tag:
            continue
        for e in gmsh.model.getEntitiesForPhysicalGroup(1, g):
            _, _, en = gmsh.model.mesh.getElements(1, e)
            for nn in en:
                nn = np.asarray(nn).reshape(-1, 2)[:, :2] if len(nn) % 2 == 0 else np.asarray(nn).reshape(-1, 3)[:, :2]
                for a, b in nn:
                    out.append([gmsh.model.mesh.getNode(a)[0], gmsh.model.mesh.getNode(b)[0]])
    return np.asarray(out, dtype=float).reshape(-1, 2, 3)


def simplex_measures(coords: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Triangle areas / tetrahedron volumes (positive)."""
    p = coords[cells]
    if cells.shape[1] == 3:
        a, b = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
        return 0.5 * np.abs(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0])
    a, b, c = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]
    return np.abs(np.einsum("ij,ij->i", a, np.cross(b, c))) / 6.0


def mesh_report(spec, ents) -> dict:
    import gmsh

    dim = int(spec["dim"])
    coords, cells, grain, etags = element_arrays(dim)
    sicn = np.asarray(gmsh.model.mesh.getElementQualities(etags, "minSICN"))
    k = cells.shape[1]
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    edges = np.concatenate([np.linalg.norm(coords[cells[:, i]] - coords[cells[:, j]], axis=1) for i, j in pairs])
    meas = simplex_measures(coords, cells)
    n = len(ents["grain_entities"])
    meshed = np.bincount(grain, weights=meas, minlength=n + 1)[1:]
    occ_mass = np.array([sum(gmsh.model.occ.getMass(dim, e) for e in ents["grain_entities"][g])
                         for g in range(1, n + 1)])
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(coords).tobytes())
    order = np.argsort(etags)
    h.update(np.ascontiguousarray(cells[order]).astype(np.int64).tobytes())
    h.update(np.ascontiguousarray(grain[order]).tobytes())
    for tag, es in sorted(ents["facet_entities"].items()):
        for e in es:
            _, _, en = gmsh.model.mesh.getElements(dim - 1, e)
            h.update(np.int64(tag).tobytes())
            for arr in en:
                h.update(np.asarray(arr, dtype=np.int64).tobytes())
    return {
        "nodes": int(len(coords)),
        "elements": int(len(cells)),
        "min_sicn": float(sicn.min()),
        "mean_sicn": float(sicn.mean()),
        "fraction_sicn_below_0.3": float(np.mean(sicn < 0.3)),
        "min_edge_um": float(edges.min()),
        "max_edge_um": float(edges.max()),
        "measure_of_grain_geometry_um": occ_mass.tolist(),
        "measure_of_grain_mesh_um": meshed.tolist(),
        "hash": h.hexdigest(),
    }


# --------------------------------------------------------------------------
# element-count estimate (before meshing)
# --------------------------------------------------------------------------
TRI_PER_AREA = 1.0 / (np.sqrt(3.0) / 4.0)  # equilateral triangles of edge h: A / (sqrt(3)/4 h^2)
TET_PER_VOLUME = 6.0 * np.sqrt(2.0)  # regular tetrahedra of edge h: V / (h^3 / (6 sqrt 2))
# gmsh's Frontal-Delaunay triangles are a little smaller than the target
# size: measured 1.22-1.25 x the equilateral count on Voronoi meshes with
# graded size fields (benchmarks/mesh_scaling.py); the estimate uses 1.2.
GMSH_DENSITY_2D = 1.2


def estimate_elements(spec) -> int:
    """Element count from the size field: 2D sum over a sample grid of
    dA / (sqrt(3)/4 h(x)^2), h(x) the same ramp as the gmsh fields (distance
    to points sampled on grain boundaries and flaw outlines, refine band);
    3D: V / (h^3 / 6 sqrt 2) with the fine shell of the grain-boundary area."""
    from scipy.spatial import cKDTree

    h, hf = float(spec["h"]), float(spec["h_fine"])
    box = np.asarray(spec["box"], dtype=float)
    dmin, dmax = transition(h, hf)
    if int(spec["dim"]) == 3:
        vol = float(box.prod())
        if hf >= h or not spec.get("faces"):
            return int(vol * TET_PER_VOLUME / h**3)
        gb_area = sum(_poly_area_3d(np.asarray(spec["vertices"])[cyc]) for cyc, a, b in spec["faces"] if b >= 0)
        shell = min(vol, 2.0 * gb_area * 0.5 * (dmin + dmax))
        return int(shell * TET_PER_VOLUME / (0.5 * (h + hf)) ** 3 + (vol - shell) * TET_PER_VOLUME / h**3)
    W, H = box
    flaws = spec.get("flaws") or []
    if hf >= h:
        sizes = None
    pts = []
    V = np.asarray(spec["vertices"], dtype=float)
    edges = {(min(a, b), max(a, b)) for cyc in spec["cells"] for a, b in zip(cyc, list(cyc[1:]) + [cyc[0]])}
    for a, b in edges:
        pa, pb = V[a], V[b]
        if _on_wall(pa, pb, box):
            continue
        k = max(2, int(np.linalg.norm(pb - pa) / (0.5 * hf)) + 1)
        pts.append(pa + np.linspace(0, 1, k)[:, None] * (pb - pa))
    for f in flaws:
        pts.append(flawlib.outline(f, H, n=max(32, int(np.pi * f["length"] / (0.5 * hf)))))
    step = max(hf, np.sqrt(W * H / 4e5))
    nx, ny = max(4, int(np.ceil(W / step))), max(4, int(np.ceil(H / step)))
    X, Y = np.meshgrid((np.arange(nx) + 0.5) * W / nx, (np.arange(ny) + 0.5) * H / ny)
    grid = np.column_stack([X.ravel(), Y.ravel()])
    sizes = np.full(len(grid), h)
    if hf < h and pts:
        dist, _ = cKDTree(np.vstack(pts)).query(grid)
        ramp = np.clip((dist - dmin) / (dmax - dmin), 0.0, 1.0)
        sizes = hf + (h - hf) * ramp
    band = spec.get("refine_band")
    if band and hf < h:
        inb = (grid[:, 0] >= band[0]) & (grid[:, 0] <= band[1]) & (grid[:, 1] >= band[2]) & (grid[:, 1] <= band[3])
        sizes[inb] = hf
    keep = np.ones(len(grid), dtype=bool)
    for f in flaws:
        if not f["filled_with_na"]:
            keep &= ~flawlib.inside(f, grid, H)
    dA = W * H / len(grid)
    return int(GMSH_DENSITY_2D * np.sum(dA * TRI_PER_AREA / sizes[keep] ** 2))


def _on_wall(pa, pb, box) -> bool:
    return any((pa[k] == 0.0 and pb[k] == 0.0) or (pa[k] == box[k] and pb[k] == box[k]) for k in range(len(box)))


def _poly_area_3d(p: np.ndarray) -> float:
    c = p.mean(axis=0)
    return 0.5 * float(np.linalg.norm(sum(np.cross(p[i] - c, p[(i + 1) % len(p)] - c) for i in range(len(p)))))
