"""Short-edge regularisation of a clipped 3D Voronoi tessellation.

A 3D Voronoi tessellation has edges far shorter than the element size (a
seed set of 12 grains in a 10 um cube: 0.03 um), and gmsh must put an
element edge on each of them: the tetrahedra there are slivers (min SICN
~0.09). As in 2D (``voronoi.regularise_2d``) the edges shorter than
``min_edge`` are collapsed, shortest first:

- the two end vertices merge at their midpoint, except that a vertex on a
  box wall stays on it (the merged vertex keeps every wall either end was
  on; a merge of vertices on opposite walls is skipped);
- a merge is skipped if it would leave a face pinched (a vertex twice in
  its cycle) or a grain with fewer than 4 faces; faces reduced to fewer
  than 3 vertices disappear (the two grains then meet along an edge);
- merging moves vertices by at most min_edge / 2, so a face may no longer
  be plane: such faces are split into a fan of plane triangles about the
  mean of their vertices (a new vertex; ``Tessellation3D.volumes`` uses the
  same fan, so the grain volumes reported are those meshed).

Pure numpy: the result is a ``Tessellation3D`` and a report dict.
"""

from __future__ import annotations

import numpy as np

from .voronoi import Tessellation3D, _sides_of


def _cycle(cyc, a, b):
    """cyc with b replaced by a and consecutive duplicates removed."""
    new = [a if v == b else v for v in cyc]
    out = [v for i, v in enumerate(new) if v != new[i - 1]]
    return out if len(out) > 1 else out[:1]


def _target(pa, pb, sa: frozenset, sb: frozenset, size):
    """Merged position and its wall set, or (None, None) if the two ends
    are pinned to opposite walls."""
    walls = sa | sb
    for axis in range(3):
        if {2 * axis, 2 * axis + 1} <= walls:
            return None, None
    p = 0.5 * (pa + pb)
    for w in walls:
        axis, hi = divmod(w, 2)
        p[axis] = size[axis] if hi else 0.0
    return p, frozenset(walls)


def regularise_3d(t: Tessellation3D, min_edge: float, plane_tol: float | None = None):
    """(regularised tessellation, report). See the module docstring."""
    size = tuple(float(s) for s in t.size)
    tol = 1e-9 * max(size)
    plane_tol = 1e-9 * max(size) if plane_tol is None else plane_tol
    V = np.asarray(t.vertices, float).copy()
    faces = [[list(map(int, cyc)), int(a), int(b)] for cyc, a, b in t.faces]
    cells = [list(c) for c in t.cells]
    sides = [_sides_of(p, size, tol) for p in V]
    vol0 = t.volumes()
    skip: set = set()
    collapsed = 0
    before = _shortest(V, faces)
    while True:
        edges = {}
        for k, (cyc, _, _) in enumerate(faces):
            if len(cyc) < 3:
                continue
            for a, b in zip(cyc, cyc[1:] + cyc[:1], strict=True):
                edges.setdefault((min(a, b), max(a, b)), []).append(k)
        cand = sorted((np.linalg.norm(V[a] - V[b]), a, b) for (a, b) in edges if (a, b) not in skip)
        cand = [c for c in cand if c[0] < min_edge]
        if not cand:
            break
        _, a, b = cand[0]
        p, walls = _target(V[a], V[b], sides[a], sides[b], size)
        if p is None:
            skip.add((a, b))
            continue
        trial = {k: _cycle(faces[k][0], a, b) for k, (cyc, _, _) in enumerate(faces)
                 if len(cyc) >= 3 and (a in cyc or b in cyc)}
        pinched = any(len(set(c)) != len(c) for c in trial.values() if len(c) >= 3)
        thin = any(sum(len(trial.get(k, faces[k][0])) >= 3 for k in cells[g]) < 4 for g in range(len(cells)))
        if pinched or thin:
            skip.add((a, b))
            continue
        V[a] = p
        sides[a] = walls
        for k, c in trial.items():
            faces[k][0] = c
        collapsed += 1
    # drop degenerate faces, renumber, split the faces that are no longer plane
    out_faces, out_cells = [], [[] for _ in cells]
    used = sorted({v for cyc, _, _ in faces if len(cyc) >= 3 for v in cyc})
    renum = {v: i for i, v in enumerate(used)}
    verts = [V[v] for v in used]
    n_split = 0
    for cyc, a, b in faces:
        if len(cyc) < 3:
            continue
        cyc = [renum[v] for v in cyc]
        P = np.asarray([verts[v] for v in cyc])
        c = P.mean(axis=0)
        n = np.linalg.svd(P - c)[2][-1]
        if np.abs((P - c) @ n).max() <= plane_tol:
            pieces = [cyc]
        else:
            n_split += 1
            verts.append(c)
            k = len(verts) - 1
            pieces = [[k, cyc[i], cyc[(i + 1) % len(cyc)]] for i in range(len(cyc))]
        for piece in pieces:
            out_cells[a].append(len(out_faces))
            if b >= 0:
                out_cells[b].append(len(out_faces))
            out_faces.append((np.asarray(piece), a, b))
    reg = Tessellation3D(size, t.seeds, np.asarray(verts), out_faces, out_cells)
    vol = reg.volumes()
    rel = np.abs(vol - vol0) / vol0
    report = {
        "min_edge_um": float(min_edge),
        "collapsed_edges": int(collapsed),
        "skipped_edges": int(len(skip)),
        "split_faces": int(n_split),
        "shortest_edge_before_um": before,
        "shortest_edge_after_um": _shortest(reg.vertices, [[list(c), a, b] for c, a, b in reg.faces]),
        "max_relative_volume_change": float(rel.max()),
        "mean_relative_volume_change": float(rel.mean()),
        "volume_closure": float(abs(vol.sum() / np.prod(size) - 1.0)),
    }
    return reg, report


def _shortest(V, faces) -> float:
    best = np.inf
    for cyc, _, _ in faces:
        if len(cyc) < 3:
            continue
        P = V[np.asarray(cyc)]
        best = min(best, float(np.linalg.norm(P - np.roll(P, -1, axis=0), axis=1).min()))
    return best

