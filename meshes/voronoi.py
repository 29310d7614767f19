"""Voronoi tessellations clipped exactly to a box (pure geometry, no gmsh).

Clipping by mirrored seeds: the seeds P in the box B are reflected across
every side of B and the Voronoi diagram of P and its 4 (2D) or 6 (3D)
mirror copies is built with scipy (qhull). For z in B a mirror q' of q is
never closer than q (q and z lie on the same side of the mirror plane), and
each side of B is the bisector of a seed and its own mirror, so the cell of
every original seed is exactly Vor_P(p) intersected with B -- no convex-hull
bias, no cut-off cells.

Units: whatever the caller uses (the mesh generators pass micrometres).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import Voronoi, cKDTree

# side ids of the box (2D): x = 0, x = W, y = 0, y = H; 3D adds z = 0, z = D
SIDES_2D = ("x0", "x1", "y0", "y1")
SIDES_3D = ("x0", "x1", "y0", "y1", "z0", "z1")


# --------------------------------------------------------------------------
# seeds
# --------------------------------------------------------------------------
def random_seeds(n: int, size, seed: int) -> np.ndarray:
    """n points uniform in the box [0, size_0] x ... (numpy default_rng(seed))."""
    size = np.asarray(size, dtype=float)
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, size=(n, len(size))) * size


def grains_from_size(grain_size: float, size) -> int:
    """Number of grains of mean equivalent diameter d in the box:
    2D N = A / (pi d^2 / 4), 3D N = V / (pi d^3 / 6) (at least 1)."""
    size = np.asarray(size, dtype=float)
    if len(size) == 2:
        return max(1, int(round(size.prod() / (np.pi * grain_size**2 / 4.0))))
    return max(1, int(round(size.prod() / (np.pi * grain_size**3 / 6.0))))


def mirrored(seeds: np.ndarray, size) -> np.ndarray:
    """Seeds followed by their mirror images across each box side, in the
    order of SIDES_2D / SIDES_3D (block k+1 of n points is side k)."""
    size = np.asarray(size, dtype=float)
    out = [seeds]
    for axis in range(len(size)):
        for wall in (0.0, size[axis]):
            m = seeds.copy()
            m[:, axis] = 2.0 * wall - m[:, axis]
            out.append(m)
    return np.vstack(out)


# --------------------------------------------------------------------------
# polygon helpers
# --------------------------------------------------------------------------
def polygon_area(xy: np.ndarray) -> float:
    """Signed area 1/2 sum (x_i y_i+1 - x_i+1 y_i) (> 0 counter-clockwise)."""
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def polygon_centroid(xy: np.ndarray) -> np.ndarray:
    """Area centroid c = 1/(6A) sum (p_i + p_i+1)(x_i y_i+1 - x_i+1 y_i)."""
    x, y = xy[:, 0], xy[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    a = 0.5 * cross.sum()
    return np.array([((x + x1) * cross).sum(), ((y + y1) * cross).sum()]) / (6.0 * a)


def _clean_vertices(vertices, used, size, tol):
    """Snap the used Voronoi vertices to the box, merge those closer than
    tol; returns (unique vertices, {old index: new index})."""
    pts = _snap(vertices[used], size, tol)
    rep = _merge_close(pts, tol)
    uniq, new_of_rep = np.unique(rep, return_inverse=True)
    return pts[uniq], {old: int(new_of_rep[k]) for k, old in enumerate(used)}


def _merge_close(points: np.ndarray, tol: float) -> np.ndarray:
    """Representative index for each point: points closer than tol merge."""
    parent = np.arange(len(points))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in sorted(cKDTree(points).query_pairs(tol)):
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return np.array([find(i) for i in range(len(points))])


def _snap(points: np.ndarray, size, tol: float) -> np.ndarray:
    """Move coordinates within tol of a box wall exactly onto it."""
    p = points.copy()
    for axis, s in enumerate(size):
        p[np.abs(p[:, axis]) < tol, axis] = 0.0
        p[np.abs(p[:, axis] - s) < tol, axis] = s
    return p


# --------------------------------------------------------------------------
# 2D
# --------------------------------------------------------------------------
@dataclass
class Tessellation2D:
    """A clipped Voronoi tessellation of [0, W] x [0, H].

    ``cells[g]`` is the counter-clockwise vertex-index cycle of grain g + 1;
    ``seeds[g]`` its generator. ``voronoi_areas`` are the areas before
    short-edge regularisation (same order as cells).
    """

    width: float
    height: float
    seeds: np.ndarray
    vertices: np.ndarray
    cells: list
    voronoi_areas: np.ndarray = None
    collapsed_edges: int = 0
    removed: list = field(default_factory=list)  # 0-based indices of removed seeds
    kept: np.ndarray = None  # 0-based seed index of each remaining cell

    @property
    def n(self) -> int:
        return len(self.cells)

    def polygon(self, g: int) -> np.ndarray:
        return self.vertices[self.cells[g]]

    def areas(self) -> np.ndarray:
        return np.array([polygon_area(self.polygon(g)) for g in range(self.n)])

    def centroids(self) -> np.ndarray:
        return np.array([polygon_centroid(self.polygon(g)) for g in range(self.n)])

    def edges(self) -> dict:
        """{(i, j) with i < j: [cells]} over every polygon edge."""
        out: dict = {}
        for g, c in enumerate(self.cells):
            for a, b in zip(c, np.roll(c, -1)):
                out.setdefault((min(a, b), max(a, b)), []).append(g)
        return out

    def neighbours(self) -> list[list[int]]:
        """0-based neighbour cells of each cell (sharing an edge)."""
        nb = [set() for _ in range(self.n)]
        for cells in self.edges().values():
            if len(cells) == 2:
                a, b = cells
                nb[a].add(b)
                nb[b].add(a)
        return [sorted(s) for s in nb]

    def boundary_cells(self) -> np.ndarray:
        """Mask of cells touching the box boundary."""
        mask = np.zeros(self.n, dtype=bool)
        for cells in self.edges().values():
            if len(cells) == 1:
                mask[cells[0]] = True
        return mask

    def vertex_sides(self, tol: float = 0.0) -> list[frozenset]:
        return [_sides_of(p, (self.width, self.height), tol) for p in self.vertices]


def _sides_of(p, size, tol=0.0) -> frozenset:
    s = set()
    for axis, L in enumerate(size):
        if abs(p[axis]) <= tol:
            s.add(2 * axis)
        if abs(p[axis] - L) <= tol:
            s.add(2 * axis + 1)
    return frozenset(s)


def clipped_voronoi_2d(seeds: np.ndarray, width: float, height: float) -> Tessellation2D:
    """Exact clipped Voronoi tessellation of the box by mirrored seeds.

    Seeds must lie strictly inside the box. Vertices closer than 1e-9 x the
    box size are merged (qhull splits degenerate vertices, e.g. where a grain
    boundary meets a side: p, q and their mirrors are cocircular) and
    vertices on the walls are snapped onto them exactly.
    """
    seeds = np.asarray(seeds, dtype=float)
    n = len(seeds)
    size = (width, height)
    tol = 1e-9 * max(width, height)
    if n == 1:
        verts = np.array([[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]])
        return Tessellation2D(width, height, seeds, verts, [np.arange(4)],
                              voronoi_areas=np.array([width * height]), kept=np.arange(1))
    vor = Voronoi(mirrored(seeds, size))
    used = sorted({v for i in range(n) for v in vor.regions[vor.point_region[i]]})
    if -1 in used:
        raise RuntimeError("clipped Voronoi: an original cell is unbounded (seed outside the box?)")
    verts, old_to_new = _clean_vertices(vor.vertices, used, size, tol)
    cells = []
    for i in range(n):
        idx = [old_to_new[v] for v in vor.regions[vor.point_region[i]]]
        idx = list(dict.fromkeys(idx))  # unique, order kept
        ang = np.arctan2(verts[idx, 1] - seeds[i, 1], verts[idx, 0] - seeds[i, 0])
        cells.append(np.asarray(idx)[np.argsort(ang)])
    t = Tessellation2D(width, height, seeds, verts, cells, kept=np.arange(n))
    t.voronoi_areas = t.areas()
    return t


def lloyd_2d(seeds: np.ndarray, width: float, height: float, iterations: int) -> np.ndarray:
    """Lloyd relaxation: seeds <- centroids of their clipped cells, k times."""
    for _ in range(iterations):
        seeds = clipped_voronoi_2d(seeds, width, height).centroids()
    return seeds


def regularise_2d(t: Tessellation2D, min_edge: float) -> Tessellation2D:
    """Collapse polygon edges shorter than ``min_edge``, shortest first.

    Box corners never move; a vertex on a side moves only along that side;
    an interior vertex merged with a side vertex goes onto the side; two
    free vertices merge at their midpoint. A cell reduced to fewer than 3
    vertices is removed (its area goes to the neighbours). A collapse that
    would invert any polygon (signed area <= 0) is skipped. Areas before
    (``voronoi_areas``) are kept for the report.
    """
    size = (t.width, t.height)
    tol = 1e-9 * max(size)
    V = t.vertices.copy()
    cells = [list(c) for c in t.cells]
    alive = list(range(len(cells)))
    sides = [_sides_of(p, size, tol) for p in V]
    skip: set = set()
    collapsed = 0
    while True:
        edges = {}
        for k in alive:
            c = cells[k]
            for a, b in zip(c, c[1:] + c[:1]):
                edges.setdefault((min(a, b), max(a, b)), []).append(k)
        cand = [(np.linalg.norm(V[a] - V[b]), a, b) for (a, b) in edges if (a, b) not in skip]
        cand = [x for x in cand if x[0] < min_edge]
        if not cand:
            break
        _, a, b = min(cand)
        target, keep_sides = _collapse_target(V[a], V[b], sides[a], sides[b])
        if target is None:
            skip.add((a, b))
            continue
        trial = {}
        for k in alive:
            c = cells[k]
            if b in c or a in c:
                new = [a if v == b else v for v in c]
                new = [v for i, v in enumerate(new) if v != new[i - 1]] if len(new) > 1 else new
                trial[k] = new
        Vt = V.copy()
        Vt[a] = target
        ok = all(len(c) < 3 or polygon_area(Vt[c]) > 0.0 for c in trial.values())
        if not ok:
            skip.add((a, b))
            continue
        V = Vt
        sides[a] = keep_sides
        for k, c in trial.items():
            cells[k] = c
        alive = [k for k in alive if len(cells[k]) >= 3]
        collapsed += 1
    removed = sorted(set(range(len(cells))) - set(alive))
    used = sorted({v for k in alive for v in cells[k]})
    renum = {v: i for i, v in enumerate(used)}
    new_cells = [np.array([renum[v] for v in cells[k]]) for k in alive]
    kept = np.asarray(t.kept)[alive] if t.kept is not None else np.array(alive)
    out = Tessellation2D(t.width, t.height, t.seeds[alive], V[used], new_cells,
                         voronoi_areas=np.asarray(t.voronoi_areas)[alive], collapsed_edges=collapsed,
                         removed=[int(np.asarray(t.kept)[k]) for k in removed] if t.kept is not None else removed,
                         kept=kept)
    return out


def _collapse_target(pa, pb, sa: frozenset, sb: frozenset):
    """Where the merged vertex goes (and its side set), or None if the two
    vertices are pinned to different walls."""
    if not sa and not sb:
        return 0.5 * (pa + pb), sa
    if sb <= sa and sa:
        if sa == sb and len(sa) == 1:
            return 0.5 * (pa + pb), sa  # both on the same side: slide to the midpoint
        if len(sa) == 2 and sa == sb:
            return None, None  # two corners
        return pa.copy(), sa
    if sa <= sb and sb:
        return pb.copy(), sb
    return None, None


# --------------------------------------------------------------------------
# 3D
# --------------------------------------------------------------------------
@dataclass
class Tessellation3D:
    """A clipped Voronoi tessellation of the box [0, W] x [0, H] x [0, D].

    ``faces[k] = (vertex cycle, cell_a, cell_b)`` with cell_b = -1 - side
    on the box walls (sides ordered as SIDES_3D); ``cells[g]`` the face
    indices of grain g + 1.
    """

    size: tuple
    seeds: np.ndarray
    vertices: np.ndarray
    faces: list
    cells: list

    @property
    def n(self) -> int:
        return len(self.cells)

    def volumes(self) -> np.ndarray:
        """Cell volumes by the divergence theorem over the face fans."""
        vol = np.zeros(self.n)
        for cyc, a, b in self.faces:
            p = self.vertices[cyc]
            c = p.mean(axis=0)
            v6 = sum(np.dot(c, np.cross(p[i], p[(i + 1) % len(p)])) for i in range(len(p)))
            # orientation of the cycle: outward for cell a (normal towards seed b)
            vol[a] += v6 / 6.0
            if b >= 0:
                vol[b] -= v6 / 6.0
        return vol

    def neighbours(self) -> list[list[int]]:
        nb = [set() for _ in range(self.n)]
        for _, a, b in self.faces:
            if b >= 0:
                nb[a].add(b)
                nb[b].add(a)
        return [sorted(s) for s in nb]


def clipped_voronoi_3d(seeds: np.ndarray, size) -> Tessellation3D:
    """Exact clipped 3D Voronoi tessellation of a box by mirrored seeds.

    Each face polygon is ordered counter-clockwise seen from outside cell_a
    (normal along seed_b - seed_a). Near-coincident vertices are merged and
    wall vertices snapped, as in 2D.
    """
    seeds = np.asarray(seeds, dtype=float)
    size = tuple(float(s) for s in size)
    n = len(seeds)
    tol = 1e-9 * max(size)
    allp = mirrored(seeds, size)
    if n == 1:
        raise ValueError("3D Voronoi needs at least 2 seeds (use kind single_crystal)")
    vor = Voronoi(allp)
    ridges = [(int(i), int(j), rv) for (i, j), rv in zip(vor.ridge_points, vor.ridge_vertices) if min(i, j) < n]
    used = sorted({v for _, _, rv in ridges for v in rv})
    if -1 in used:
        raise RuntimeError("clipped Voronoi: unbounded face of an original cell")
    verts, old_to_new = _clean_vertices(vor.vertices, used, size, tol)
    faces, cells = [], [[] for _ in range(n)]
    for i, j, rv in ridges:
        if i >= n:
            i, j = j, i
        idx = list(dict.fromkeys(old_to_new[v] for v in rv))
        if len(idx) < 3:
            continue
        normal = allp[j] - allp[i]
        normal /= np.linalg.norm(normal)
        p = verts[idx]
        c = p.mean(axis=0)
        e1 = p[0] - c
        e1 -= np.dot(e1, normal) * normal
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(normal, e1)
        ang = np.arctan2((p - c) @ e2, (p - c) @ e1)
        cyc = np.asarray(idx)[np.argsort(ang)]
        b = j if j < n else -1 - (j // n - 1)
        cells[i].append(len(faces))
        if b >= 0:
            cells[b].append(len(faces))
        faces.append((cyc, i, b))
    return Tessellation3D(size, seeds, verts, faces, cells)


def lloyd_3d(seeds: np.ndarray, size, iterations: int) -> np.ndarray:
    """Lloyd relaxation in 3D (centroids of the clipped cells)."""
    for _ in range(iterations):
        t = clipped_voronoi_3d(seeds, size)
        cen = np.zeros_like(seeds)
        vol = np.zeros(len(seeds))
        for cyc, a, b in t.faces:
            p = t.vertices[cyc]
            c = p.mean(axis=0)
            for k in range(len(p)):
                q0, q1 = p[k], p[(k + 1) % len(p)]
                for cell, sign, apex in ((a, 1.0, t.seeds[a]), (b, -1.0, t.seeds[b] if b >= 0 else None)):
                    if cell < 0:
                        continue
                    v = sign * np.dot(c - apex, np.cross(q0 - apex, q1 - apex)) / 6.0
                    vol[cell] += v
                    cen[cell] += v * (apex + c + q0 + q1) / 4.0
        seeds = cen / vol[:, None]
    return seeds
