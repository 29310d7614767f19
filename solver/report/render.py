"""Off-screen pictures with pyvista (headless: no DISPLAY needed).

``headless()`` makes sure VTK can open a render window: if there is no
DISPLAY it starts a private Xvfb on a free display number (``-displayfd``,
so concurrent runs never collide) and stops it afterwards. If neither a
display nor Xvfb is available, the pictures fall back to matplotlib.

Coordinates are micrometres (the mesh unit). Used by ``solver mesh`` and
``solver report``.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np

_XVFB = {"proc": None, "display": None, "depth": 0}


@contextmanager
def headless(timeout: float = 10.0):
    """Context in which VTK can render off screen. Yields True if pyvista can
    be used, False if only the matplotlib fallback is safe."""
    if os.environ.get("DISPLAY") or _XVFB["depth"] > 0:
        _XVFB["depth"] += 1
        try:
            yield True
        finally:
            _XVFB["depth"] -= 1
        return
    exe = shutil.which("Xvfb")
    if exe is None:
        yield False
        return
    rfd, wfd = os.pipe()
    proc = subprocess.Popen(
        [exe, "-displayfd", str(wfd), "-screen", "0", "1600x1200x24", "-nolisten", "tcp"],
        pass_fds=(wfd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(wfd)
    number = b""
    try:
        while not number.endswith(b"\n"):
            ready, _, _ = select.select([rfd], [], [], timeout)
            if not ready:
                break
            chunk = os.read(rfd, 16)
            if not chunk:
                break
            number += chunk
    finally:
        os.close(rfd)
    if not number.strip().isdigit():
        proc.terminate()
        proc.wait()
        yield False
        return
    os.environ["DISPLAY"] = f":{number.strip().decode()}"
    _XVFB.update(proc=proc, depth=1)
    try:
        yield True
    finally:
        _XVFB.update(proc=None, depth=0)
        os.environ.pop("DISPLAY", None)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def interface_edges(cells: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Edges (k, 2) of a triangle set that separate different labels, plus
    the outer boundary edges (edges of one triangle only)."""
    tri = np.asarray(cells)[:, :3]
    e = np.vstack([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    lab = np.concatenate([label, label, label])
    e.sort(axis=1)
    order = np.lexsort((e[:, 1], e[:, 0]))
    e, lab = e[order], lab[order]
    same_next = np.all(e[1:] == e[:-1], axis=1)
    out = []
    i, n = 0, len(e)
    while i < n:
        if i + 1 < n and same_next[i]:
            if lab[i] != lab[i + 1]:
                out.append(e[i])
            i += 2
        else:
            out.append(e[i])
            i += 1
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def orientation_picture(path: Path, points: np.ndarray, cells: np.ndarray, value: np.ndarray,
                        label: np.ndarray, title: str, value_name: str = "theta [deg]",
                        clim=(0.0, 180.0), cmap: str = "twilight", dim: int = 2,
                        window=None, extra_lines=None, glyphs=None) -> str:
    """PNG of triangles coloured by ``value`` per triangle (orientation)
    with the edges between different ``label`` (grains) drawn in black and
    ``extra_lines`` (k, 2, 3) (flaw outlines) in red and ``glyphs`` (k, 2, 3)
    (short segments along each grain's conduction planes) in white.
    2D: seen from +z; 3D (boundary triangles): isometric view.
    Returns the backend used ('pyvista' or 'matplotlib')."""
    path = Path(path)
    points = np.asarray(points, dtype=float)
    if points.shape[1] == 2:
        points = np.column_stack([points, np.zeros(len(points))])
    edges = interface_edges(cells, label)
    if window is None:
        span = np.ptp(points[:, :2], axis=0)
        aspect = float(np.clip(span[0] / max(span[1], 1e-300), 0.5, 3.0)) if dim == 2 else 1.3
        window = (int(700 * aspect) + 300, 800) if aspect >= 1 else (900, int(700 / aspect) + 100)
    if extra_lines is not None and len(extra_lines) == 0:
        extra_lines = None
    with headless() as ok:
        if ok:
            try:
                _pyvista_picture(path, points, cells, value, edges, title, value_name, clim, cmap, dim, window,
                                 extra_lines, glyphs)
                return "pyvista"
            except Exception:  # pragma: no cover - fall back below
                pass
    _mpl_picture(path, points, cells, value, edges, title, value_name, clim, cmap, window, extra_lines, glyphs)
    return "matplotlib"


def _pyvista_picture(path, points, cells, value, edges, title, value_name, clim, cmap, dim, window,
                                 extra_lines, glyphs):
    import pyvista as pv

    pv.OFF_SCREEN = True
    tri = np.asarray(cells)[:, :3]
    faces = np.hstack([np.full((len(tri), 1), 3), tri]).ravel()
    surf = pv.PolyData(points, faces)
    surf.cell_data[value_name] = np.asarray(value, dtype=float)
    lines = pv.PolyData(points, lines=np.hstack([np.full((len(edges), 1), 2), edges]).ravel()) if len(edges) else None
    pl = pv.Plotter(off_screen=True, window_size=list(window))
    pl.set_background("white")
    pl.add_mesh(surf, scalars=value_name, cmap=cmap, clim=clim, show_edges=False,
                scalar_bar_args={"title": value_name, "color": "black", "vertical": True,
                                 "position_x": 0.86, "position_y": 0.15, "height": 0.7, "width": 0.05})
    if lines is not None:
        pl.add_mesh(lines, color="black", line_width=2)
    for segs, colour, width in ((extra_lines, "red", 3), (glyphs, "white", 2)):
        if segs is None or len(segs) == 0:
            continue
        seg = np.asarray(segs, dtype=float).reshape(-1, 3)
        conn = np.hstack([np.full((len(seg) // 2, 1), 2), np.arange(len(seg)).reshape(-1, 2)]).ravel()
        pl.add_mesh(pv.PolyData(seg, lines=conn), color=colour, line_width=width)
    pl.add_text(title, font_size=10, color="black")
    if dim == 2:
        pl.view_xy()
        pl.enable_parallel_projection()
    else:
        pl.view_isometric()
    if dim == 3:
        pl.show_bounds(color="black", xtitle="x [um]", ytitle="y [um]", ztitle="z [um]", grid=False)
    else:
        # fit the box into the left ~75 % of the window (scalar bar on the right)
        lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
        span, centre = hi - lo, 0.5 * (lo + hi)
        ratio = window[0] / window[1]
        scale = max(0.68 * span[1], 1.12 * span[0] / (0.75 * 2.0 * ratio))
        visible_w = 2.0 * scale * ratio
        focus = (centre[0] + 0.11 * visible_w, centre[1] - 0.03 * scale, 0.0)
        pl.camera.focal_point = focus
        pl.camera.position = (focus[0], focus[1], 10.0 * max(span))
        pl.camera.up = (0.0, 1.0, 0.0)
        pl.camera.parallel_scale = scale
    pl.screenshot(str(path))
    pl.close()


def _mpl_picture(path, points, cells, value, edges, title, value_name, clim, cmap, window, extra_lines, glyphs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    fig, ax = plt.subplots(figsize=(window[0] / 150, window[1] / 150), dpi=150)
    tri = np.asarray(cells)[:, :3]
    pc = ax.tripcolor(points[:, 0], points[:, 1], tri, facecolors=np.asarray(value, float), cmap=cmap,
                      vmin=clim[0], vmax=clim[1])
    if len(edges):
        ax.add_collection(LineCollection(points[edges][:, :, :2], colors="k", linewidths=0.8))
    if extra_lines is not None:
        ax.add_collection(LineCollection(np.asarray(extra_lines)[:, :, :2], colors="r", linewidths=1.2))
    if glyphs is not None and len(glyphs):
        ax.add_collection(LineCollection(np.asarray(glyphs)[:, :, :2], colors="w", linewidths=1.0))
    fig.colorbar(pc, ax=ax, label=value_name)
    ax.set_aspect("equal")
    ax.set_xlabel("x [um]")
    ax.set_ylabel("y [um]")
    ax.set_title(title)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
