"""Snapshots of a 3D run (tetrahedra): the dendrite, the cracks and the
grains in one picture per output time, with pyvista off screen.

Three panels, all in the same oblique view (growth direction y up):

1. the Na metal as the isosurface xi = 0.5 (blue), the damaged cells
   d > 0.5 (red), the grain boundaries as semi-transparent grey faces and
   the box outline;
2. xi on the mid-plane slices x = x_mid and z = z_mid, grain boundaries
   drawn on the slices in black;
3. the damage d on the same slices.

Each panel carries a scale bar in micrometres along the bottom front edge
of the box (x direction). Point fields are used as they are; a damage
field written per cell (DG0) is used per cell, a point damage field is
averaged over each cell's nodes for the d > 0.5 test.

``snapshot_3d`` returns a metadata dict (isosurface size and the xi
interpolated on it, damaged cells, grain boundary faces, scale bar) that
tests and callers can check without looking at pictures. Coordinates are
micrometres (the mesh unit), time seconds. No DOLFINx.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ISO_XI = 0.5       # the metal surface: the xi = 0.5 isosurface
DAMAGED = 0.5      # a cell counts as cracked when d > 0.5
GB_OPACITY = 0.25  # grain boundary faces: see-through
CRACK_OPACITY = 0.5  # the cracked cells: the metal surface shows through
WINDOW = (1560, 560)

_TET_FACES = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])


def grain_boundary_faces(cells: np.ndarray, grain: np.ndarray | None) -> np.ndarray:
    """Triangles (k, 3) (node indices, sorted) shared by two tetrahedra of
    different ``grain`` (the grain boundaries); faces on the outer boundary
    are left out."""
    if grain is None:
        return np.zeros((0, 3), dtype=np.int64)
    tet = np.asarray(cells, dtype=np.int64)[:, :4]
    grain = np.asarray(grain).ravel()
    faces = np.sort(tet[:, _TET_FACES].reshape(-1, 3), axis=1)
    owner = np.repeat(np.arange(len(tet)), 4)
    order = np.lexsort((faces[:, 2], faces[:, 1], faces[:, 0]))
    faces, owner = faces[order], owner[order]
    shared = np.flatnonzero(np.all(faces[1:] == faces[:-1], axis=1))  # i and i + 1 are one face
    differ = grain[owner[shared]] != grain[owner[shared + 1]]
    return faces[shared[differ]]


def cell_values(cells: np.ndarray, pdata: dict, cdata: dict, name: str) -> np.ndarray | None:
    """``name`` per cell: the cell field itself, or the mean of a point
    field over each cell's nodes; None if the frame has no such field."""
    if name in cdata:
        return np.asarray(cdata[name], dtype=float).ravel()
    if name in pdata:
        v = np.asarray(pdata[name], dtype=float).ravel()
        return v[np.asarray(cells, dtype=np.int64)].mean(axis=1)
    return None


def damaged_cells(cells: np.ndarray, pdata: dict, cdata: dict, threshold: float = DAMAGED) -> np.ndarray:
    """Indices of the cells whose damage exceeds ``threshold``."""
    d = cell_values(cells, pdata, cdata, "damage")
    return np.zeros(0, dtype=np.int64) if d is None else np.flatnonzero(d > threshold)


def _grid(points, cells):
    import pyvista as pv

    tet = np.asarray(cells, dtype=np.int64)[:, :4]
    return pv.UnstructuredGrid(np.hstack([np.full((len(tet), 1), 4), tet]).ravel(),
                               np.full(len(tet), pv.CellType.TETRA, dtype=np.uint8), np.asarray(points, float))


def _camera(pl, lo, hi):
    centre, span = 0.5 * (lo + hi), float(np.linalg.norm(hi - lo))
    direction = np.array([1.0, 0.75, 1.6])
    direction /= np.linalg.norm(direction)
    pl.camera.focal_point = tuple(centre)
    pl.camera.position = tuple(centre + 3.0 * span * direction)
    pl.camera.up = (0.0, 1.0, 0.0)
    pl.enable_parallel_projection()
    pl.reset_camera()
    pl.camera.zoom(1.05)


def snapshot_3d(path: Path | None, frame, title: str | None = None) -> dict:
    """Write the three-panel picture of one 3D ``frame`` (solver/io/series.py
    Frame) to ``path`` (None: only return it, as "image", (H, W, 3) uint8);
    returns the metadata (see the module doc). Needs a display or Xvfb
    (solver/report/render.py: headless)."""
    import pyvista as pv

    from .animation import scale_bar_length

    pv.OFF_SCREEN = True
    path = None if path is None else Path(path)
    points = np.asarray(frame.points, dtype=float)
    cells = np.asarray(frame.cells, dtype=np.int64)
    pdata, cdata = frame.point_data, frame.cell_data
    lo, hi = points.min(axis=0), points.max(axis=0)
    span, mid = hi - lo, 0.5 * (lo + hi)
    grid = _grid(points, cells)
    for name in ("metal", "damage"):
        if name in pdata:
            grid.point_data[name] = np.asarray(pdata[name], float).ravel()
        elif name in cdata:
            grid.cell_data[name] = np.asarray(cdata[name], float).ravel()
    grain = cdata.get("grain_id")
    gb = grain_boundary_faces(cells, grain)
    gb_poly = pv.PolyData(points, np.hstack([np.full((len(gb), 1), 3), gb]).ravel()) if len(gb) else None

    iso = None
    iso_xi = np.zeros(0)
    if "metal" in pdata:
        iso = grid.contour([ISO_XI], scalars="metal")
        if iso.n_points:
            iso_xi = np.asarray(iso.point_data["metal"]) if "metal" in iso.point_data else np.full(iso.n_points, ISO_XI)
        else:
            iso = None
    broken = damaged_cells(cells, pdata, cdata)
    cracked = grid.extract_cells(broken).extract_surface() if len(broken) else None

    bar_um = scale_bar_length(float(span[0]))
    y_bar, z_bar = lo[1] - 0.08 * span[1], hi[2]
    bar = pv.Line((lo[0], y_bar, z_bar), (lo[0] + bar_um, y_bar, z_bar))
    label_at = np.array([[lo[0] + bar_um + 0.05 * span[0], y_bar, z_bar]])
    outline = grid.outline()
    normals = (("x", (1.0, 0.0, 0.0)), ("z", (0.0, 0.0, 1.0)))

    pl = pv.Plotter(off_screen=True, shape=(1, 3), window_size=list(WINDOW), border=False)
    pl.set_background("white")

    def common(j, text):
        pl.subplot(0, j)
        pl.add_mesh(outline, color="black", line_width=1.5)
        pl.add_mesh(bar, color="black", line_width=5)
        pl.add_point_labels(label_at, [f"{bar_um:g} um"], show_points=False, shape=None, text_color="black",
                            font_size=14, always_visible=True, justification_horizontal="left")
        pl.add_text(text, font_size=9, color="black")

    stamp = f"t = {frame.t:.4g} s" if title is None else title
    common(0, f"{stamp}\nxi = 0.5 (blue), d > 0.5 (red), grain boundaries")
    if gb_poly is not None:
        pl.add_mesh(gb_poly, color=(0.55, 0.55, 0.55), opacity=GB_OPACITY, show_edges=False)
    if iso is not None:
        pl.add_mesh(iso, color="royalblue", smooth_shading=True)
    if cracked is not None:
        pl.add_mesh(cracked, color="red", opacity=CRACK_OPACITY)
    _camera(pl, lo, hi)

    slices_made = 0
    for j, (name, label, cmap) in enumerate((("metal", "Na metal xi", "Blues"), ("damage", "damage d", "Reds")), 1):
        common(j, f"{label} on the mid-planes x = {mid[0]:.3g} um, z = {mid[2]:.3g} um")
        if name in grid.point_data or name in grid.cell_data:
            for axis, normal in normals:
                sl = grid.slice(normal=normal, origin=tuple(mid))
                if sl.n_points == 0:
                    continue
                slices_made += 1
                pl.add_mesh(sl, scalars=name, cmap=cmap, clim=(0.0, 1.0), show_scalar_bar=axis == "x", lighting=False,
                            scalar_bar_args={"title": label, "vertical": False, "fmt": "%.2g", "color": "black",
                                             "title_font_size": 14, "label_font_size": 12, "position_x": 0.2,
                                             "position_y": 0.04, "width": 0.6, "height": 0.07})
                if gb_poly is not None:
                    cut = gb_poly.slice(normal=normal, origin=tuple(mid))
                    if cut.n_points:
                        pl.add_mesh(cut, color="black", line_width=2)
        _camera(pl, lo, hi)
    image = np.asarray(pl.screenshot(None if path is None else str(path), return_img=True))[..., :3]
    pl.close()
    return {
        "path": path,
        "image": image,
        "t": frame.t,
        "isosurface_points": 0 if iso is None else int(iso.n_points),
        "isosurface_xi": iso_xi,
        "isosurface_bounds": None if iso is None else tuple(iso.bounds),
        "damaged_cells": int(len(broken)),
        "grain_boundary_faces": int(len(gb)),
        "slices": slices_made,
        "scale_bar_um": bar_um,
    }
