"""`solver report` pictures of a 3D run and the ParaView script for 3D
(issue 25 item 3): the xi = 0.5 isosurface, the cells with d > 0.5, the
grain boundary faces and the mid-plane slices (solver/report/render3d.py),
and paraview/open_fields_3d.py under pvpython.

The geometry helpers are checked on a structured tetrahedral box against
closed forms (a planar grain boundary of known area, a linear damage
field); the pictures on a tiny coupled 3D run (2 grains, 4 x 4 x 2 um,
3 steps, about 2 s). Coordinates um, time s.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_paraview import run_pvpython

ROOT = Path(__file__).resolve().parents[1]

TINY_3D = {
    "name": "tiny_report_3d",
    "mesh": {"kind": "voronoi", "dim": 3, "width": "4 um", "height": "4 um", "depth": "2 um", "grains": 2,
             "seed": 1, "h": "0.8 um", "orientation": {"mode": "given", "axes": [[0, 1, 1], [1, 0.2, 0]]}},
    "electrochemistry": {"interface_width": "0.8 um", "initial_na": [{"type": "layer", "thickness": "1.2 um"}]},
    "fracture": {"model": "stress", "length_scale": "0.8 um", "strength_bulk": "3 GPa", "strength_plane": "3 GPa",
                 "strength_grain_boundary": "3 GPa"},
    "loading": {"electrical": {"control": "potentiostatic", "voltage": "0.1 V"}},
    "time": {"t_end": "0.03 s", "dt": "0.01 s", "growth": 1.0},
    "output": {"every": 1},
}


def box_tets(n=(4, 3, 2), size=(4.0, 3.0, 2.0)):
    """Points and tetrahedra (6 per hexahedron, Kuhn split) of a box [um]."""
    nx, ny, nz = n
    xs, ys, zs = (np.linspace(0.0, s, k + 1) for s, k in zip(size, n, strict=True))
    X, Y, Z = np.meshgrid(xs, ys, zs, indexing="ij")
    points = np.column_stack([X.ravel(), Y.ravel(), Z.ravel()])
    idx = np.arange(len(points)).reshape(nx + 1, ny + 1, nz + 1)
    tets = []
    paths = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
    for i in range(nx):
        for j in range(ny):
            for k in range(nz):
                for p in paths:
                    c = [0, 0, 0]
                    tet = [idx[i, j, k]]
                    for axis in p:
                        c[axis] = 1
                        tet.append(idx[i + c[0], j + c[1], k + c[2]])
                    tets.append(tet)
    return points, np.array(tets, dtype=np.int64)


def test_grain_boundary_faces_of_a_box_split_at_mid_x():
    """Two grains x < 2 and x > 2 um in a 4 x 3 x 2 um box: the grain
    boundary faces lie on x = 2 and cover its 3 x 2 um cross-section; one
    grain gives none."""
    from solver.report.render3d import grain_boundary_faces

    points, tets = box_tets()
    centroid_x = points[tets].mean(axis=1)[:, 0]
    grain = np.where(centroid_x < 2.0, 1, 2)
    gb = grain_boundary_faces(tets, grain)
    assert len(gb) > 0
    assert np.all(np.abs(points[gb][:, :, 0] - 2.0) < 1e-12)
    tri = points[gb]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
    assert area == pytest.approx(3.0 * 2.0, rel=1e-12, abs=0)
    assert len(grain_boundary_faces(tets, np.ones(len(tets)))) == 0


def test_damaged_cells_point_and_cell_fields():
    """d = x / 3.6 um (linear, a point field): a cell's node mean is its
    centroid value, so the cells with d > 0.5 are those whose centroid has
    x > 1.8 um (a plane through the middle of a layer of cells, so a node
    maximum or minimum would select others); the same d given per cell
    selects the same cells."""
    from solver.report.render3d import damaged_cells

    points, tets = box_tets()
    d = points[:, 0] / 3.6
    cx = points[tets].mean(axis=1)[:, 0]
    expect = np.flatnonzero(cx > 1.8)
    assert 0 < len(expect) < len(tets)
    assert np.array_equal(damaged_cells(tets, {"damage": d}, {}), expect)
    assert np.array_equal(damaged_cells(tets, {}, {"damage": cx / 3.6}), expect)
    assert len(damaged_cells(tets, {}, {})) == 0


@pytest.fixture(scope="module")
def run3d(tmp_path_factory):
    from solver.config import load_config
    from solver.run import run

    out = tmp_path_factory.mktemp("report3d") / "run"
    assert run(load_config(raw=json.loads(json.dumps(TINY_3D))), out) == 0
    return out


def _last_frame(directory):
    from solver.io.series import RunSeries

    with RunSeries(directory) as s:
        return s.frame(len(s) - 1), len(s)


def _red_pixels(img):
    img = np.asarray(img, dtype=int)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return int(np.sum(r - np.maximum(g, b) > 50))  # lit red faces at half opacity on white


def test_snapshot_3d_of_a_run(run3d, tmp_path):
    """On the last output of the tiny run: the isosurface carries xi = 0.5
    (to 1e-6) and lies between the electrode (y = 0) and the top; the grain
    boundary faces are those of grain_boundary_faces; four slices; the
    scale bar is 0.5 um (a round fifth of 4 um). Damage set to 1 in grain 2
    (a field written into the frame) turns grain 2's cells red in the first
    panel; the run's own damage (below 0.5) leaves no red there."""
    import imageio.v3 as iio

    from solver.report.render import headless
    from solver.report.render3d import WINDOW, grain_boundary_faces, snapshot_3d

    frame, _ = _last_frame(run3d)
    assert frame.cell_type == "tetrahedron"
    assert float(np.max(frame.point_data["damage"])) < 0.5
    with headless() as ok:
        if not ok:
            pytest.skip("no display and no Xvfb")
        meta = snapshot_3d(tmp_path / "a.png", frame)
        grain = np.asarray(frame.cell_data["grain_id"]).ravel()
        cracked_frame = type(frame)(frame.t, frame.points, frame.cells, frame.cell_type,
                                    dict(frame.point_data), {**frame.cell_data, "damage": (grain == grain.max()) * 1.0})
        del cracked_frame.point_data["damage"]
        meta_c = snapshot_3d(tmp_path / "b.png", cracked_frame)
    assert meta["isosurface_points"] > 20
    assert np.allclose(meta["isosurface_xi"], 0.5, atol=1e-6, rtol=0)
    _, _, ylo, yhi, _, _ = meta["isosurface_bounds"]
    assert 0.0 < ylo <= yhi < 4.0
    assert meta["grain_boundary_faces"] == len(grain_boundary_faces(frame.cells, grain)) > 0
    assert meta["slices"] == 4 and meta["scale_bar_um"] == 0.5 and meta["damaged_cells"] == 0
    assert meta_c["damaged_cells"] == int(np.sum(grain == grain.max())) > 0
    a, b = iio.imread(tmp_path / "a.png"), iio.imread(tmp_path / "b.png")
    assert a.shape[:2] == (WINDOW[1], WINDOW[0])
    third = WINDOW[0] // 3
    assert _red_pixels(a[:, :third]) == 0
    assert _red_pixels(b[:, :third]) > 1000


def test_report_writes_3d_snapshots(run3d, capsys):
    """`solver report` on a 3D run: snapshots at three output times (first,
    middle, last), listed in report.txt, and an animation with one frame
    per output time at the snapshot size, the frames not all alike."""
    import imageio.v3 as iio

    from solver.report.figures import report
    from solver.report.render3d import WINDOW, grain_boundary_faces

    frame, n = _last_frame(run3d)
    assert n == 4  # t = 0 and three steps
    assert report(run3d) == 0
    shots = sorted((run3d / "figures").glob("snapshot_t*.png"))
    assert len(shots) == 3, shots
    text = (run3d / "report.txt").read_text()
    assert all(str(p) in text for p in shots)
    assert any(p.name == f"snapshot_t{frame.t:.4g}s.png" for p in shots)
    assert all(p.stat().st_size > 20_000 for p in shots)
    gif = iio.imread(run3d / "figures" / "animation.gif", index=None)
    assert gif.shape[:3] == (n, WINDOW[1], WINDOW[0])
    assert np.abs(gif[-1].astype(int) - gif[0].astype(int)).max() > 0
    faces = len(grain_boundary_faces(frame.cells, frame.cell_data["grain_id"]))
    assert f"animation: {n} frames of {n} output times, scale bar 0.5 um, {faces} grain boundary faces" in text


@pytest.mark.skipif(shutil.which("pvpython") is None or shutil.which("xvfb-run") is None,
                    reason="ParaView (pvpython) or xvfb-run not installed")
def test_pvpython_3d_script_agrees_with_the_report(run3d, tmp_path):
    """paraview/open_fields_3d.py on the tiny run, with the last output's
    damage replaced by d = (x - x_min) / width (point field): ParaView's
    contour carries xi = 0.5, its count of cells with d > 0.5 (cell average,
    Threshold) equals render3d.damaged_cells, and it finds both grains."""
    import h5py

    from solver.report.render3d import damaged_cells

    run = tmp_path / "run"
    shutil.copytree(run3d, run, ignore=shutil.ignore_patterns("figures", "checkpoint*"))
    frame, n = _last_frame(run)
    x = frame.points[:, 0]
    d = (x - x.min()) / np.ptp(x)
    # the last step's damage dataset, from the XDMF index
    import xml.etree.ElementTree as ET

    root = ET.parse(run / "fields.xdmf").getroot()
    steps = [g for g in root.iter("Grid") if g.find("Time") is not None]
    last = max(steps, key=lambda g: float(g.find("Time").get("Value")))
    item = next(a for a in last.findall("Attribute") if a.get("Name") == "damage").find("DataItem")
    fname, dataset = item.text.strip().split(":", 1)
    with h5py.File(run / fname, "r+") as h5:
        assert h5[dataset].shape[0] == len(d)
        h5[dataset][...] = d.reshape(h5[dataset].shape)
    frame, _ = _last_frame(run)
    expect = len(damaged_cells(frame.cells, frame.point_data, frame.cell_data))
    assert 0 < expect < len(frame.cells)
    png = tmp_path / "shot.png"
    cmd = ["pvpython", str(ROOT / "paraview/open_fields_3d.py"), str(run / "fields.xdmf"),
           "--screenshot", str(png)]
    res = run_pvpython(cmd)
    if res.returncode == 134:  # ParaView now and then aborts creating its view under Xvfb (test_paraview.py)
        res = run_pvpython(cmd)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    m = re.search(r"(\d+) time steps; metal surface xi = 0.5: (\d+) points, xi on it (\S+) \.\. (\S+); "
                  r"cracked cells \(d > 0.5\): (\d+); grains: (\d+)", res.stdout)
    assert m, res.stdout
    steps_pv, n_iso, lo, hi, cracked, grains = m.groups()
    assert int(steps_pv) == n and int(n_iso) > 20
    assert abs(float(lo) - 0.5) < 1e-6 and abs(float(hi) - 0.5) < 1e-6
    assert int(cracked) == expect
    assert int(grains) == len(np.unique(frame.cell_data["grain_id"])) == 2
    assert png.stat().st_size > 10_000
