"""Voronoi geometry, orientation and input checks (docs/verification-plan.md M1-M4,
M6 isotropy). Pure geometry: scipy/numpy only, no gmsh, no DOLFINx."""

from __future__ import annotations

import numpy as np
import pytest

from meshes import voronoi as vor
from meshes.orientation import c_axes, grain_angles


def _box_check(t):
    """V - E + F = 1, interior edges border 2 cells, boundary edges 1 cell
    and lie on a wall."""
    edges = t.edges()
    V = len({v for c in t.cells for v in c})
    assert V == len(t.vertices)
    assert V - len(edges) + t.n == 1
    for (a, b), cells in edges.items():
        assert len(cells) in (1, 2)
        if len(cells) == 1:
            pa, pb = t.vertices[a], t.vertices[b]
            on = [(pa[k] == w and pb[k] == w) for k, w in ((0, 0.0), (0, t.width), (1, 0.0), (1, t.height))]
            assert any(on), f"boundary edge {pa} -> {pb} not on a wall"
        else:
            assert cells[0] != cells[1]


def test_clipping_is_exact():
    """Cells are the box-clipped Voronoi cells: every sample point lies in
    the cell of its nearest seed; areas close the box to 1e-12."""
    W, H, n = 2.0, 1.0, 60
    seeds = vor.random_seeds(n, (W, H), 11)
    t = vor.clipped_voronoi_2d(seeds, W, H)
    assert t.n == n
    areas = t.areas()
    assert np.all(areas > 0)  # counter-clockwise
    assert abs(areas.sum() - W * H) < 1e-12 * W * H
    pts = vor.random_seeds(2000, (W, H), 12)
    nearest = np.argmin(((pts[:, None, :] - seeds[None]) ** 2).sum(-1), axis=1)
    for p, g in zip(pts, nearest):
        poly = t.polygon(g)
        e = np.roll(poly, -1, axis=0) - poly
        cross = e[:, 0] * (p[1] - poly[:, 1]) - e[:, 1] * (p[0] - poly[:, 0])
        assert np.all(cross >= -1e-12), "sample point outside the cell of its nearest seed"
    # every vertex is equidistant from the seeds of the cells meeting there
    for k, v in enumerate(t.vertices):
        cells = [g for g, c in enumerate(t.cells) if k in c]
        d = np.linalg.norm(seeds[cells] - v, axis=1)
        assert np.ptp(d) < 1e-9


def test_topology_euler_and_two_grains_per_boundary():
    t = vor.clipped_voronoi_2d(vor.random_seeds(80, (3.0, 1.0), 5), 3.0, 1.0)
    _box_check(t)
    r = vor.regularise_2d(t, 0.05)
    _box_check(r)


def test_regularisation_removes_short_edges_keeps_box():
    W, H = 2.0, 1.0
    t = vor.clipped_voronoi_2d(vor.random_seeds(100, (W, H), 3), W, H)
    lengths = [np.linalg.norm(t.vertices[a] - t.vertices[b]) for a, b in t.edges()]
    min_edge = 0.04
    assert min(lengths) < min_edge  # there is something to collapse
    r = vor.regularise_2d(t, min_edge)
    assert r.collapsed_edges > 0
    after = [np.linalg.norm(r.vertices[a] - r.vertices[b]) for a, b in r.edges()]
    assert min(after) >= min_edge
    assert abs(r.areas().sum() - W * H) < 1e-12 * W * H  # box unchanged
    for c in ([0, 0], [W, 0], [W, H], [0, H]):
        assert np.any(np.all(r.vertices == c, axis=1)), f"corner {c} lost"
    # cells keep their seed index, areas change a little (reported)
    assert len(r.kept) == r.n == 100 - len(r.removed)
    rel = np.abs(r.areas() - r.voronoi_areas) / r.voronoi_areas
    assert rel.max() < 0.5


def test_lloyd_makes_cells_regular():
    W, H = 2.0, 1.0
    s0 = vor.random_seeds(100, (W, H), 9)
    cv0 = np.std(vor.clipped_voronoi_2d(s0, W, H).areas()) / (W * H / 100)
    s3 = vor.lloyd_2d(s0, W, H, 5)
    cv3 = np.std(vor.clipped_voronoi_2d(s3, W, H).areas()) / (W * H / 100)
    assert cv3 < 0.5 * cv0


def test_area_statistics_ensemble():
    """M4: mean area A/N exactly; area CV 0.556 +/- 0.058 per realisation
    (clipped 2 x 1 box, N = 100): the ensemble mean of M = 200 CVs must lie
    within 3 standard errors 3 x 0.058 / sqrt(M) = 0.012 of 0.556."""
    W, H, n, M = 2.0, 1.0, 100, 200
    cvs = []
    for s in range(M):
        a = vor.clipped_voronoi_2d(vor.random_seeds(n, (W, H), 1000 + s), W, H).areas()
        assert abs(a.mean() - W * H / n) < 1e-12 * W * H / n
        cvs.append(a.std() / a.mean())
    assert abs(np.mean(cvs) - 0.556) < 3 * 0.058 / np.sqrt(M)
    assert abs(np.std(cvs) - 0.058) < 0.015


def test_mean_edges_per_interior_cell_is_six():
    """Typical Poisson-Voronoi cell has 6 edges (Euler, degree-3 vertices).
    Cells chosen by seed position (> 3 grain diameters from the walls, so
    the choice is independent of the cell's size); 10 x 1000 seeds, sd of
    the side number 1.33 over ~6000 cells: 3.5 standard errors = 0.06."""
    sides = []
    for s in range(10):
        seeds = vor.random_seeds(1000, (2.0, 1.0), 100 + s)
        t = vor.clipped_voronoi_2d(seeds, 2.0, 1.0)
        m = (seeds[:, 0] > 0.15) & (seeds[:, 0] < 1.85) & (seeds[:, 1] > 0.15) & (seeds[:, 1] < 0.85)
        sides += [len(t.cells[i]) for i in np.flatnonzero(m)]
    assert abs(np.mean(sides) - 6.0) < 0.06


def test_grains_from_size():
    assert vor.grains_from_size(2.0, (20.0, 10.0)) == round(200 / np.pi)
    assert vor.grains_from_size(2.0, (10.0, 10.0, 10.0)) == round(1000 / (np.pi * 8 / 6))


def test_3d_clipped_voronoi_closes_the_box():
    size = (2.0, 1.0, 1.5)
    t = vor.clipped_voronoi_3d(vor.random_seeds(25, size, 2), size)
    vol = t.volumes()
    assert np.all(vol > 0)
    assert abs(vol.sum() - np.prod(size)) < 1e-10 * np.prod(size)
    # every interior face between two different cells, each cell closed:
    # each of its edges is shared by exactly two of its faces
    for g, faces in enumerate(t.cells):
        count = {}
        for k in faces:
            cyc = t.faces[k][0]
            for a, b in zip(cyc, np.roll(cyc, -1)):
                count[(min(a, b), max(a, b))] = count.get((min(a, b), max(a, b)), 0) + 1
        assert set(count.values()) == {2}, f"cell {g} is not closed"


# --------------------------------------------------------------------------
# orientation (M6)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n", [10, 50, 200])
def test_stratified_angles_are_isotropic(n):
    """|mean exp(2 i theta)| of stratified angles is far below the random
    sampling value sqrt(pi/(4N)) (which random draws do reach)."""
    bound = np.sqrt(np.pi / (4 * n))
    strat = [abs(np.mean(np.exp(2j * grain_angles(n, "stratified", s)))) for s in range(100)]
    rand = [abs(np.mean(np.exp(2j * grain_angles(n, "random", s)))) for s in range(100)]
    assert max(strat) < 0.5 * bound
    assert np.mean(strat) < 0.2 * bound
    assert abs(np.mean(rand) / bound - 1.0) < 0.15  # the bound is the random value
    th = grain_angles(n, "stratified", 3)
    assert np.all((th >= 0) & (th < np.pi))


def test_given_angles_and_errors():
    th = grain_angles(3, "given", angles=[0.1, np.pi + 0.2, -0.3])
    assert np.allclose(th, [0.1, 0.2, np.pi - 0.3])
    with pytest.raises(ValueError, match="expected 4 angles"):
        grain_angles(4, "given", angles=[0.1])


def test_c_axes_unit_and_isotropic():
    for mode in ("random", "stratified"):
        m = c_axes(400, mode, 4)
        assert np.allclose(np.linalg.norm(m, axis=1), 1.0)
        assert np.all(m[:, 2] >= 0)
        T = m.T @ m / len(m)  # second moment: I/3 if isotropic
        tol = 0.01 if mode == "stratified" else 0.08
        assert np.abs(T - np.eye(3) / 3).max() < tol, (mode, T)
