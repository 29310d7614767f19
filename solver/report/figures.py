"""``solver report DIR``: figures and a text summary of a run.

Reads scalars.csv, summary.json and fields.xdmf (solver/io/series.py; no DOLFINx) and
writes DIR/figures/*.png and DIR/report.txt:

- snapshot_t*.png: metal (xi), damage (d) and hydrostatic pressure at three
  output times, grain boundaries in black (pyvista off screen);
  zoom_t*.png: the same at the last output time around the tallest deposit
  when the domain is large next to it (a specimen; ``deposit_window``); in 3D the
  xi = 0.5 isosurface, the cells with d > 0.5, the grain boundaries and
  mid-plane slices of xi and d (solver/report/render3d.py)
- tips.png: dendrite and crack tip position vs time
- deposit.png: deposited volume (area x 3 um in 2D) and height vs time
  (Geng 2023 Fig. 6d style)
- electrical.png: cell voltage and current density vs time (Fig. 1i style)
- animation.gif (and animation.mp4 if ffmpeg is on PATH): metal (xi) and
  damage (d) at every output time, grain boundaries and a scale bar
  (solver/report/animation.py); in 3D the snapshot pictures, at most 60
  output times

Snapshots and animation frames carry a scale bar in micrometres below the
domain and draw the grain boundaries (from the grain_id cell field).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

from .. import scales


def read_scalars(path: Path) -> dict[str, list[float]]:
    cols: dict[str, list[float]] = {}
    with open(path) as fh:
        for row in csv.DictReader(fh):
            for k, v in row.items():
                try:
                    cols.setdefault(k, []).append(float(v))
                except (TypeError, ValueError):
                    cols.setdefault(k, []).append(float("nan"))
    return cols


def _plot(cols, keys, ylabel, path: Path, title: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [k for k in keys if k in cols and any(v == v for v in cols[k])]
    if not present or "time_s" not in cols:
        return False
    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    for k in present:
        ax.plot(cols["time_s"], cols[k], marker=".", label=k)
    ax.set_xlabel("time [s]")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(present) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


DEPTH_2D_M = 3e-6  # Geng 2023: volume = area x 3 um thickness

SNAPSHOT_FIELDS = [  # (name, title, colour map, fixed range or None)
    ("metal", "Na metal xi", "inferno", (0.0, 1.0)),
    ("damage", "damage d", "Reds", (0.0, 1.0)),
    ("hydrostatic_pressure", "pressure [MPa]", "coolwarm", None),
    ("potential", "potential [V]", "viridis", None),
]
CONCENTRATION_FIELD = ("concentration", "Na+ c [mol/m^3]", "viridis", None)


def _twin_plot(cols, left, right, path: Path, title: str, left_extra=None) -> bool:
    """Two quantities vs time on twin y axes: left=(key, label, scale), right likewise;
    left_extra = (key, legend label) adds a dashed curve on the left axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "time_s" not in cols or left[0] not in cols:
        return False
    fig, ax = plt.subplots(figsize=(5.8, 3.8), dpi=120)
    ax.plot(cols["time_s"], [v * left[2] for v in cols[left[0]]], color="tab:blue", marker=".")
    ax.set_xlabel("time [s]")
    ax.set_ylabel(left[1], color="tab:blue")
    if left_extra is not None and left_extra[0] in cols:
        ax.plot(cols["time_s"], [v * left[2] for v in cols[left_extra[0]]], color="0.45", ls="--", lw=1.5,
                label=left_extra[1])
        ax.legend(loc="upper left", fontsize=8)
    if right[0] in cols:
        ax2 = ax.twinx()
        ax2.plot(cols["time_s"], [v * right[2] for v in cols[right[0]]], color="tab:red", marker=".")
        ax2.set_ylabel(right[1], color="tab:red")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def snapshots(directory: Path, figs: Path, n: int = 3) -> list[Path]:
    """Field snapshots at n output times (first with metal, middle, last),
    each drawn on its own mesh (a restarted run changes the node order)."""
    from ..io.series import RunSeries

    frames = []
    with RunSeries(directory) as series:  # fields.xdmf and the segments of later meshes, whichever exist
        steps = sorted({0, len(series) // 2, len(series) - 1}) if len(series) > 0 else []
        for k in steps[:n]:
            fr = series.frame(k)
            if fr.cell_type not in ("triangle", "tetrahedron"):
                return []
            frames.append(fr)
    if frames and frames[0].cell_type == "tetrahedron":
        return snapshots_3d(frames, figs)
    made = []
    for fr in frames:
        path = figs / f"snapshot_t{fr.t:.4g}s.png"
        if _draw_snapshot(path, fr.points, fr.cells, fr.point_data, fr.cell_data, fr.t):
            made.append(path)
    box = deposit_window(frames[-1].points, frames[-1].point_data) if frames else None
    if box is not None:
        path = figs / f"zoom_t{frames[-1].t:.4g}s.png"
        if _draw_snapshot(path, *crop(frames[-1], box), frames[-1].t):
            made.append(path)
    return made


def _draw_snapshot(path: Path, points, tri, pdata, cdata, t: float) -> bool:
    """One 2D snapshot picture (pyvista off screen, matplotlib without a
    display): the fields of ``snapshot_fields`` side by side with the grain
    boundaries. False when the frame has none of those fields."""
    from .render import headless, interface_edges

    fields = snapshot_fields(pdata, cdata)
    if not fields:
        return False
    fields = [(name, title, cmap, clim if clim is not None else colour_range(_values(name, pdata, cdata)[1], cmap))
              for name, title, cmap, clim in fields]
    grain = cdata.get("grain_id")
    edges = interface_edges(tri, grain.ravel()) if grain is not None else np.zeros((0, 2), int)
    with headless() as ok:
        (_pyvista_snapshot if ok else _mpl_snapshot)(path, points, tri, pdata, cdata, fields, edges, t)
    return True


TIP_ZOOM_MIN_POINTS = 20_000  # below this the whole-domain snapshot resolves the tip already


def deposit_window(points: np.ndarray, pdata: dict, max_fraction: float = 0.3):
    """The window (x0, x1, y0, y1) [um] of a zoom on the tallest deposit, or
    None when there is no metal. The tallest deposit's tip is the metal
    point (xi > 0.5) of largest y; the window runs from the plating
    electrode (the domain's lowest y) to a fifth of the deposit height above
    the tip, and spans the metal and damage (d > 0.5) within that height of
    the tip's x, and at least 0.8 times its height. When that window would
    show more than ``max_fraction`` of the domain (a tree across the
    specimen, near its short circuit) the zoom is on the tip alone: a square
    of ``max_fraction`` times the domain's smaller side, centred on the tip's
    x, its top a tenth of its side above the tip, on meshes of at least
    ``TIP_ZOOM_MIN_POINTS`` points; on smaller ones None (the snapshots show
    the deposit already)."""
    xi = np.asarray(pdata.get("metal", [])).ravel()
    if xi.size == 0 or not np.any(xi > 0.5):
        return None
    xy = np.asarray(points)[:, :2]
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    metal = xi > 0.5
    xt, yt = xy[np.argmax(np.where(metal, xy[:, 1], -np.inf))]
    y1 = min(hi[1], yt + 0.2 * (yt - lo[1]) + 0.02 * (hi[1] - lo[1]))
    d = np.asarray(pdata.get("damage", np.zeros(len(xy)))).ravel()
    near = (metal | (d > 0.5)) & (np.abs(xy[:, 0] - xt) <= y1 - lo[1])
    half = max(0.4 * (y1 - lo[1]), 1.1 * np.abs(xy[near, 0] - xt).max())
    x0, x1 = max(lo[0], xt - half), min(hi[0], xt + half)
    if (x1 - x0) * (y1 - lo[1]) <= max_fraction * np.prod(hi - lo):
        return (float(x0), float(x1), float(lo[1]), float(y1))
    if len(xy) < TIP_ZOOM_MIN_POINTS:
        return None
    side = max_fraction * float(min(hi - lo))
    top = min(float(hi[1]), yt + 0.1 * side)
    x0 = min(max(float(lo[0]), xt - 0.5 * side), float(hi[0]) - side)
    return (x0, x0 + side, max(float(lo[1]), top - side), top)


def crop(frame, box):
    """Points, cells, point data and cell data of the cells of ``frame``
    whose centroid lies in box = (x0, x1, y0, y1) [um], renumbered."""
    x0, x1, y0, y1 = box
    cells = np.asarray(frame.cells)
    centre = np.asarray(frame.points)[cells, :2].mean(axis=1)
    keep = (centre[:, 0] >= x0) & (centre[:, 0] <= x1) & (centre[:, 1] >= y0) & (centre[:, 1] <= y1)
    used = np.unique(cells[keep])
    new = np.full(len(frame.points), -1, dtype=np.int64)
    new[used] = np.arange(len(used))
    pdata = {k: np.asarray(v)[used] for k, v in frame.point_data.items()}
    cdata = {k: np.asarray(v)[keep] for k, v in frame.cell_data.items()}
    return np.asarray(frame.points)[used], new[cells[keep]], pdata, cdata


def snapshots_3d(frames, figs: Path) -> list[Path]:
    """3D runs (tetrahedra): one picture per frame with the xi = 0.5
    isosurface, the cells with d > 0.5, the grain boundaries and mid-plane
    slices of xi and d (solver/report/render3d.py). Needs a display or Xvfb."""
    from .render import headless
    from .render3d import snapshot_3d

    made = []
    with headless() as ok:
        if not ok:
            print("warning: no 3D snapshots (pyvista needs a display or Xvfb; neither found)", file=sys.stderr)
            return []
        for fr in frames:
            made.append(snapshot_3d(figs / f"snapshot_t{fr.t:.4g}s.png", fr)["path"])
    return made


def snapshot_fields(pdata, cdata) -> list[tuple]:
    """The first three of SNAPSHOT_FIELDS present in a frame, plus the Na+
    concentration when it departs from uniform by more than 5% of its maximum
    (a diffusion-limited run: D below Nernst-Einstein, docs/studies/diffusion-limited.md); with Nernst-Einstein transport c stays uniform and is left out."""
    fields = [f for f in SNAPSHOT_FIELDS if f[0] in pdata or f[0] in cdata][:3]
    c = np.asarray(pdata.get("concentration", [])).ravel()
    if c.size and np.ptp(c) > 0.05 * np.abs(c).max():
        fields.append(CONCENTRATION_FIELD)
    return fields


def _values(name, pdata, cdata):
    if name in pdata:
        return "point", np.asarray(pdata[name]).ravel()
    v = np.asarray(cdata[name]).ravel()
    return "cell", (v / 1e6 if name == "hydrostatic_pressure" else v)


def colour_range(values: np.ndarray, cmap: str, quantile: float = 0.99) -> tuple[float, float]:
    """Colour limits that a few extreme cells do not set. A diverging map
    (coolwarm: pressure, compression > 0) is centred on zero, +-(the
    ``quantile`` of |v|); others span the (1 - q, q) quantiles. Values beyond
    the limits take the end colours."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return (0.0, 1.0)
    if cmap == "coolwarm":
        m = float(np.quantile(np.abs(v), quantile))
        m = m if m > 0.0 else float(np.max(np.abs(v))) or 1.0
        return (-m, m)
    lo, hi = float(np.quantile(v, 1.0 - quantile)), float(np.quantile(v, quantile))
    if hi <= lo:  # (nearly) uniform: the full range, or one unit above a constant
        lo, hi = float(v.min()), float(v.max())
        hi = hi if hi > lo else lo + 1.0
    return (lo, hi)


def _scale_bar_at(points, span):
    """Left end (x, y) [um] of a scale bar just below the domain and its round
    length [um] (solver/report/animation.py: scale_bar_length)."""
    from .animation import scale_bar_length

    lo = np.asarray(points)[:, :2].min(axis=0)
    return (lo[0] + 0.05 * span[0], lo[1] - 0.07 * span[1]), scale_bar_length(float(span[0]))


def _pyvista_snapshot(path, points, tri, pdata, cdata, fields, edges, t):
    import pyvista as pv

    pts = np.column_stack([points[:, :2], np.zeros(len(points))])
    grid = pv.UnstructuredGrid(np.hstack([np.full((len(tri), 1), 3), tri]).ravel(),
                               np.full(len(tri), pv.CellType.TRIANGLE), pts)
    lines = pv.PolyData(pts, lines=np.hstack([np.full((len(edges), 1), 2), edges]).ravel()) if len(edges) else None
    span = np.ptp(pts[:, :2], axis=0)
    (bx, by), bar_um = _scale_bar_at(pts, span)
    bar = pv.Line((bx, by, 0.0), (bx + bar_um, by, 0.0))
    label_at = np.array([[bx + bar_um + 0.04 * span[0], by, 0.0]])
    w = int(420 * max(0.6, min(2.5, span[0] / max(span[1], 1e-30))))
    pl = pv.Plotter(off_screen=True, shape=(1, len(fields)), window_size=(w * len(fields) + 60, 480), border=False)
    for j, (name, title, cmap, clim) in enumerate(fields):
        pl.subplot(0, j)
        where, vals = _values(name, pdata, cdata)
        g = grid.copy()
        (g.point_data if where == "point" else g.cell_data)[title] = vals
        pl.add_mesh(g, scalars=title, cmap=cmap, clim=clim, show_scalar_bar=True,
                    scalar_bar_args={"title": title, "vertical": False, "fmt": "%.3g", "title_font_size": 14,
                                     "label_font_size": 12, "position_x": 0.15, "position_y": 0.03, "width": 0.7,
                                     "height": 0.08})
        if lines is not None:
            pl.add_mesh(lines, color="black", line_width=1.5)
        pl.add_mesh(bar, color="black", line_width=5)
        pl.add_point_labels(label_at, [f"{bar_um:g} um"], show_points=False, shape=None, text_color="black",
                            font_size=14, always_visible=True, justification_horizontal="left")
        pl.add_text(f"t = {t:.4g} s", font_size=9)
        pl.view_xy()
        pl.camera.zoom(0.95)
    pl.screenshot(str(path))
    pl.close()


def _mpl_snapshot(path, points, tri, pdata, cdata, fields, edges, t):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.tri import Triangulation

    tr = Triangulation(points[:, 0], points[:, 1], tri)
    fig, axes = plt.subplots(1, len(fields), figsize=(4.2 * len(fields), 4), dpi=110)
    for ax, (name, title, cmap, clim) in zip(np.atleast_1d(axes), fields):
        where, vals = _values(name, pdata, cdata)
        kw = {"vmin": clim[0], "vmax": clim[1]} if clim else {}
        im = ax.tripcolor(tr, vals, cmap=cmap, shading="gouraud" if where == "point" else "flat", **kw)
        ax.add_collection(LineCollection(points[edges][:, :, :2], colors="k", linewidths=0.6))
        (bx, by), bar_um = _scale_bar_at(points, np.ptp(points[:, :2], axis=0))
        ax.plot([bx, bx + bar_um], [by, by], color="k", lw=4, solid_capstyle="butt")
        ax.text(bx + bar_um + 0.04 * np.ptp(points[:, 0]), by, f"{bar_um:g} um", va="center", fontsize=8)
        ax.set_aspect("equal")
        ax.set_title(f"{title}, t = {t:.4g} s", fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _molar_volume(directory: Path) -> float | None:
    """Omega [m^3/mol] from the run's config.resolved.yaml (None if absent)."""
    path = Path(directory) / "config.resolved.yaml"
    if not path.exists():
        return None
    import yaml

    try:
        return float(yaml.safe_load(path.read_text())["materials"]["sodium"]["molar_volume"])
    except (KeyError, TypeError, ValueError):
        return None


def report(directory: Path) -> int:
    directory = Path(directory)
    scal, summ = directory / "scalars.csv", directory / "summary.json"
    if not scal.exists() or not summ.exists():
        print(f"error: {directory} is not a run directory (expected scalars.csv and summary.json)", file=sys.stderr)
        return 1
    cols = read_scalars(scal)
    summary = json.loads(summ.read_text())
    figs = directory / "figures"
    figs.mkdir(exist_ok=True)
    made = []
    for name, keys, label, title in [
        ("tips.png", ["dendrite_tip_m", "crack_tip_m"], "tip position y [m]", "Dendrite and crack tips"),
        ("iterations.png", ["stagger_iterations", "newton_iterations", "krylov_iterations"], "iterations", "Solver iterations"),
        ("reaction.png", ["reaction_force_y_N_m"], "reaction force [N/m]", "Reaction force"),
    ]:
        if _plot(cols, keys, label, figs / name, title):
            made.append(figs / name)
    if "deposited_volume_m3_m" in cols:
        cols["deposited_volume_3um_m3"] = [a * DEPTH_2D_M for a in cols["deposited_volume_m3_m"]]
    omega = _molar_volume(directory)
    if omega and "charge_C_m" in cols:  # Faraday bound q Omega / (n F), n = 1 for Na
        cols["faraday_3um_m3"] = [q * omega / scales.FARADAY * DEPTH_2D_M for q in cols["charge_C_m"]]
    if _twin_plot(cols, ("deposited_volume_3um_m3", "deposited volume (area x 3 um) [um^3]", 1e18),
                  ("dendrite_tip_m", "dendrite height [um]", 1e6), figs / "deposit.png", "Deposited Na (Geng Fig. 6d style)",
                  left_extra=("faraday_3um_m3", "Faraday bound q Omega / F")):
        made.append(figs / "deposit.png")
    if _twin_plot(cols, ("cell_voltage_V", "cell voltage [V]", 1.0),
                  ("current_density_A_m2", "current density [mA/cm^2]", 0.1), figs / "electrical.png",
                  "Voltage and current (Geng Fig. 1i style)"):
        made.append(figs / "electrical.png")
    try:
        made += snapshots(directory, figs)
    except Exception as exc:  # a report without snapshots beats no report
        print(f"warning: no field snapshots ({type(exc).__name__}: {exc})", file=sys.stderr)
    movie = None
    try:
        from .animation import animate

        movie = animate(directory, figs)
    except Exception as exc:  # likewise: the figures above stand without it
        print(f"warning: no animation ({type(exc).__name__}: {exc})", file=sys.stderr)
    if movie is not None:
        made += [p for p in (movie["gif"], movie["mp4"]) if p is not None]
    lines = [
        f"run: {directory}",
        f"status: {summary.get('status')}, steps {summary.get('steps')}, final time {summary.get('final_time_s', 0):.4e} s",
        f"ranks {summary.get('ranks')}, DOFs {summary.get('dofs')}",
        f"wall time {summary.get('wall_time_s', 0):.1f} s: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in summary.get("wall_split_s", {}).items()),
    ]
    for k in ("current_density_A_m2", "cell_voltage_V", "charge_C_m", "dendrite_tip_m", "crack_length_m"):
        if k in cols and cols[k] and cols[k][-1] == cols[k][-1]:
            lines.append(f"final {k} = {cols[k][-1]:.6g}")
    if movie is not None:
        lines.append(f"animation: {movie['frames']} frames of {movie['outputs']} output times, "
                     f"scale bar {movie['scale_bar_um']:g} um, "
                     + (f"{movie['grain_boundary_faces']} grain boundary faces" if "grain_boundary_faces" in movie
                        else f"{movie['grain_boundary_segments']} grain boundary segments")
                     + ("" if movie["mp4"] is not None else f" (no MP4: {movie['mp4_note']})"))
    lines += [f"figure: {p}" for p in made]
    lines.append(f"report: {directory / 'report.txt'}, figures in {figs}")
    text = "\n".join(lines) + "\n"
    (directory / "report.txt").write_text(text)
    print(text, end="")
    return 0
