"""`solver report`'s animation (issue 22 item 3): one frame per output time of
fields.xdmf, metal and damage side by side, grain boundaries drawn, a scale
bar in micrometres. Checked on a real (tiny) run: the GIF read back has as
many frames as the run wrote output times, the scale bar is as long in
pixels as its length in um says, and the pixels on grain boundaries are
dark while the cells around them are light."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

# A bicrystal (grain boundary at x = 2 um), a thin Na layer, plating at
# 0.1 V; the electrolyte is strong so nothing cracks: this is about pictures.
TINY = {
    "name": "tiny_animation",
    "mesh": {"kind": "bicrystal", "width": "4 um", "height": "3 um", "h": "0.4 um",
             "orientation": {"mode": "given", "angles": ["30 deg", "120 deg"]}},
    "electrochemistry": {"interface_width": "0.5 um", "initial_na": [{"type": "layer", "thickness": "0.8 um"}]},
    "fracture": {"model": "stress", "length_scale": "0.5 um", "strength_bulk": "3 GPa", "strength_plane": "3 GPa",
                 "strength_grain_boundary": "3 GPa"},
    "loading": {"electrical": {"control": "potentiostatic", "voltage": "0.1 V"}},
    "time": {"t_end": "0.05 s", "dt": "0.01 s", "growth": 1.0},
    "output": {"every": 1, "checkpoint_every": 100},
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from mpi4py import MPI

    from solver.config import load_config
    from solver.run import run

    out = tmp_path_factory.mktemp("anim") / "run"
    cfg = load_config(raw=json.loads(json.dumps(TINY)))
    assert run(cfg, out, comm=MPI.COMM_SELF) == 0
    return out


def _output_times(directory: Path) -> list[float]:
    from solver.io.series import FieldSeries

    with FieldSeries(directory / "fields.xdmf") as s:
        return [s.frame(k).t for k in range(len(s))]


def test_scale_bar_length_is_a_round_fifth_of_the_width():
    from solver.report.animation import scale_bar_length

    assert scale_bar_length(24.0) == 2.0    # 4.8 -> 2
    assert scale_bar_length(30.0) == 5.0    # 6 -> 5
    assert scale_bar_length(80.0) == 10.0   # 16 -> 10
    assert scale_bar_length(4.0) == 0.5     # 0.8 -> 0.5
    assert scale_bar_length(1.0) == pytest.approx(0.2)


def test_grain_boundaries_are_the_interior_edges_between_grains():
    """A 2 x 1 square of four triangles, two grains split at x = 1: the one
    shared edge on x = 1 is the grain boundary; the outer boundary is not."""
    from solver.report.animation import grain_boundaries

    # nodes: 0 (0,0) 1 (1,0) 2 (2,0) 3 (0,1) 4 (1,1) 5 (2,1)
    cells = np.array([[0, 1, 4], [0, 4, 3], [1, 2, 5], [1, 5, 4]])
    gb = grain_boundaries(cells, np.array([0, 0, 1, 1]))
    assert gb.tolist() == [[1, 4]]
    assert len(grain_boundaries(cells, np.array([0, 0, 0, 0]))) == 0
    assert len(grain_boundaries(cells, None)) == 0


def test_report_writes_an_animation_with_one_frame_per_output_time(tiny_run, tmp_path):
    import imageio.v3 as iio

    from solver.report import figures as rep

    times = _output_times(tiny_run)
    assert len(times) >= 5  # every step of 0.05 s / 0.01 s, plus t = 0 if written
    assert rep.report(tiny_run) == 0
    gif = tiny_run / "figures" / "animation.gif"
    frames = iio.imread(gif, index=None)
    assert frames.shape[0] == len(times)
    text = (tiny_run / "report.txt").read_text()
    assert f"animation: {len(times)} frames of {len(times)} output times" in text
    assert "scale bar 0.5 um" in text  # 4 um wide: a fifth is 0.8, rounded down to 0.5
    if shutil.which("ffmpeg"):
        mp4 = tiny_run / "figures" / "animation.mp4"
        assert mp4.stat().st_size > 1000 and mp4.read_bytes()[4:8] == b"ftyp"


def test_animation_frames_show_the_scale_bar_and_the_grain_boundary(tiny_run, tmp_path):
    """Pixel checks on the first frame, read back from the GIF. Scale bar:
    black between its ends, white just beyond them. Grain boundary (x = 2
    um): dark at its sample points while the electrolyte 0.5 um beside it is
    light. And the bar measures what it says: on a row through the
    electrolyte, the box's left edge (x = 0) and the grain boundary (x = 2
    um) are found by scanning the pixels, and they are 4 bar lengths (4 x
    0.5 um) apart."""
    import imageio.v3 as iio

    from solver.report.animation import animate

    meta = animate(tiny_run, tmp_path, mp4=False)
    assert meta["frames"] == meta["outputs"] == len(_output_times(tiny_run))
    assert meta["scale_bar_um"] == 0.5
    assert meta["grain_boundary_segments"] > 0
    img = iio.imread(meta["gif"], index=0)[:, :, :3].astype(int)
    assert img.shape[:2] == meta["size_px"]
    for j, panel in enumerate(meta["first_frame"]["panels"]):
        row, c0, c1 = (int(round(v)) for v in panel["scale_bar_px"])
        assert img[row, c0 + 2:c1 - 2].max() < 60, "scale bar row not black"
        assert img[row, c1 + 3:c1 + 6].min() > 200 and img[row, c0 - 6:c0 - 3].min() > 200, "bar longer than drawn"
        gb_px = panel["grain_boundary_px"]
        assert len(gb_px) == meta["grain_boundary_segments"]
        assert np.ptp(gb_px[:, 1]) < 2.0  # the bicrystal's boundary is vertical: one column
        upper = gb_px[gb_px[:, 0] < np.median(gb_px[:, 0])]  # electrolyte, above the Na layer
        assert len(upper) >= 2
        side = 0.5 / panel["um_per_px"]
        for r, c in upper:
            r, c = int(round(r)), int(round(c))
            assert img[r - 1:r + 2, c - 1:c + 2].max(axis=2).min() < 90, f"grain boundary not drawn at {(r, c)}"
            assert img[r, int(round(c + side))].min() > 200, "electrolyte beside the boundary is not light"
        if j == 0:  # the left panel starts at column 0: scan its row from the left
            r = int(round(np.median(upper[:, 0])))
            dark = np.flatnonzero(img[r, : int(round(upper[0, 1])) + 3].max(axis=1) < 180)
            left, boundary = dark[0], dark[-1]
            assert boundary - left > 10
            assert boundary - left == pytest.approx(4 * (c1 - c0), abs=3)


def _grid(width, height, n):
    """Right triangles on an n x n grid over [0, width] x [0, height] [um]."""
    x, y = np.meshgrid(np.linspace(0, width, n + 1), np.linspace(0, height, n + 1))
    points = np.column_stack([x.ravel(), y.ravel()])
    k = np.arange(n * (n + 1)).reshape(n, n + 1)[:, :n].ravel()
    cells = np.vstack([np.column_stack([k, k + 1, k + n + 2]), np.column_stack([k, k + n + 2, k + n + 1])])
    return points, cells


def test_the_zoom_window_frames_the_tallest_deposit_of_a_specimen_and_not_a_small_cell():
    """`solver report` zooms on the dendrite of a specimen (issue 21 item 4):
    a 60 um finger at x = 300 um and a 5 um flaw deposit at x = 100 um in a
    500 x 250 um domain. The window runs from y = 0 to the tip plus a fifth
    of its height plus 2% of the domain (60 + 12 + 5 = 77 um), spans at
    least 0.8 of that height around the tip and leaves the far flaw out;
    the crop keeps exactly the cells whose centroids lie in it. A deposit
    that fills a small domain, or no metal, gives no zoom."""
    from solver.io.series import Frame
    from solver.report.figures import crop, deposit_window

    points, cells = _grid(500.0, 250.0, 100)
    x, y = points[:, 0], points[:, 1]
    xi = (((np.abs(x - 300) <= 2.5) & (y <= 60)) | ((np.abs(x - 100) <= 2.5) & (y <= 5))).astype(float)
    damage = ((np.abs(x - 300) <= 7.5) & (y <= 30)).astype(float)
    box = deposit_window(points, {"metal": xi, "damage": damage})
    assert box is not None
    x0, x1, y0, y1 = box
    assert (y0, y1) == pytest.approx((0.0, 77.0))
    assert x0 < 300 < x1 and x1 - x0 >= 0.8 * y1 - 1e-9
    assert x0 > 100 + 2.5, "the far flaw deposit is out of the zoom"
    frame = Frame(1.0, points, cells, "triangle", {"metal": xi, "damage": damage}, {"grain_id": np.arange(len(cells))})
    p, c, pd, cd = crop(frame, box)
    centre = points[cells].mean(axis=1)
    inside = (centre[:, 0] >= x0) & (centre[:, 0] <= x1) & (centre[:, 1] >= y0) & (centre[:, 1] <= y1)
    assert len(c) == inside.sum() and 0 < len(c) < len(cells)
    assert np.array_equal(cd["grain_id"], np.flatnonzero(inside))
    np.testing.assert_array_equal(p[c], points[cells[inside]])
    np.testing.assert_array_equal(pd["metal"][c], xi[cells[inside]])
    # a deposit across most of a small cell: the snapshots already show it
    small, _ = _grid(10.0, 10.0, 20)
    assert deposit_window(small, {"metal": (small[:, 1] <= 8).astype(float)}) is None
    assert deposit_window(points, {"metal": np.zeros(len(points))}) is None


def test_a_tree_across_the_specimen_gets_a_zoom_on_its_tip():
    """Near a short circuit the tallest tree spans most of a 400 x 200 um
    specimen (a trunk at x = 320 um up to y = 195 um, a branch 150 um to
    either side): the window of the whole tree would show more than 30% of
    the domain, so the zoom is on the tip: a 60 um square (0.3 x 200 um)
    centred on x = 320 um, its top at the domain's top (195 + 6 > 200 um).
    A square that would cross the domain's side is moved inside it."""
    from solver.report.figures import TIP_ZOOM_MIN_POINTS, deposit_window

    points, _ = _grid(400.0, 200.0, 200)
    assert len(points) >= TIP_ZOOM_MIN_POINTS
    x, y = points[:, 0], points[:, 1]
    for xt, want_x0 in ((320.0, 290.0), (390.0, 340.0)):
        tree = ((np.abs(x - xt) <= 0.5) & (y <= 195)) | ((np.abs(y - 40) <= 2.5) & (np.abs(x - xt) <= 150))
        box = deposit_window(points, {"metal": tree.astype(float)})
        assert box == pytest.approx((want_x0, want_x0 + 60.0, 140.0, 200.0)), box


def test_report_draws_a_run_directory_that_has_only_later_mesh_segments(tiny_run, tmp_path):
    """A run continued in a directory of its own from a copied checkpoint on
    an adapted mesh has fields_NNNN.xdmf segments but no fields.xdmf (the
    file of the first mesh): the report still draws its snapshots and its
    animation from the segments (until 2026-12-07 it drew none)."""
    from solver.report import figures as rep

    run = tmp_path / "continued"
    run.mkdir()
    for name in ("scalars.csv", "summary.json", "fields.h5"):
        shutil.copy(tiny_run / name, run / name)
    shutil.copy(tiny_run / "fields.xdmf", run / "fields_0007.xdmf")  # still refers to fields.h5
    assert rep.report(run) == 0
    figs = run / "figures"
    times = _output_times(tiny_run)
    assert sorted(p.name for p in figs.glob("snapshot_t*.png")), list(figs.iterdir())
    assert (figs / "animation.gif").exists()
    assert f"animation: {len(times)} frames of {len(times)} output times" in (run / "report.txt").read_text()
