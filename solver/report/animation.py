"""Animation of a run: the Na metal (xi) and the damage (d) at every output
time of fields.xdmf, side by side, with the grain boundaries in black and a
scale bar in micrometres.

Frames are drawn with matplotlib's Agg canvas (headless, no DISPLAY) at a
fixed size, so every frame has the same pixels and the same layout; the GIF
is written with imageio (Pillow), the MP4 by piping raw RGB frames to
ffmpeg when ffmpeg is on PATH. No DOLFINx.

``animate(directory, figs)`` returns a metadata dict (paths, number of
frames, output times, scale bar length, grain boundary segments and, for
the first frame, pixel positions of the scale bar and of grain boundary
points) that tests and callers can check without looking at pictures.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from .render import interface_edges

FIELDS = (  # (name, title, colour map): 0 is white in both maps, so black lines stay visible
    ("metal", "Na metal xi", "Blues"),
    ("damage", "damage d", "Reds"),
)
MAX_FRAMES = 300  # longer series are subsampled evenly (first and last kept)
MAX_FRAMES_3D = 60  # a 3D frame (pyvista, solver/report/render3d.py) takes about 1 s
FPS = 8
DPI = 100


def scale_bar_length(span_um: float) -> float:
    """A round length (1, 2 or 5 x 10^k um) near a fifth of ``span_um``."""
    if not np.isfinite(span_um) or span_um <= 0.0:
        return 1.0
    target = span_um / 5.0
    k = np.floor(np.log10(target))
    for m in (5.0, 2.0, 1.0):
        if m * 10.0**k <= target * 1.0000001:
            return float(m * 10.0**k)
    return float(10.0**k)  # pragma: no cover - m = 1 always fits


def _label(length_um: float) -> str:
    return f"{length_um:g} um"


def grain_boundaries(cells: np.ndarray, grain: np.ndarray | None) -> np.ndarray:
    """Interior edges (k, 2) between cells of different grain_id (the outer
    boundary left out)."""
    if grain is None:
        return np.zeros((0, 2), dtype=np.int64)
    tri = np.asarray(cells)[:, :3]
    grain = np.asarray(grain).ravel()
    all_edges = interface_edges(tri, grain)
    outer = interface_edges(tri, np.zeros(len(tri), dtype=np.int64))  # boundary edges only
    if len(outer) == 0 or len(all_edges) == 0:
        return all_edges
    key = lambda e: e[:, 0].astype(np.int64) * (int(tri.max()) + 1) + e[:, 1]  # noqa: E731 - edges are sorted
    return all_edges[~np.isin(key(all_edges), key(outer))]


def _field(frame, name):
    if name in frame.point_data:
        return "point", np.asarray(frame.point_data[name], dtype=float).ravel()
    if name in frame.cell_data:
        return "cell", np.asarray(frame.cell_data[name], dtype=float).ravel()
    return None, None


class FrameRenderer:
    """Draws frames of one run at a fixed figure size; ``render(frame)``
    returns an (H, W, 3) uint8 image and fills ``self.pixels`` with where
    the scale bar and the grain boundaries landed."""

    def __init__(self, points: np.ndarray, fields=FIELDS):
        import matplotlib

        matplotlib.use("Agg")
        lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
        self.lo, self.hi = lo, hi
        self.span = hi - lo
        self.fields = fields
        self.bar_um = scale_bar_length(float(self.span[0]))
        aspect = float(np.clip(self.span[1] / max(self.span[0], 1e-30), 0.4, 2.5))
        panel_w = 3.6
        self.figsize = (panel_w * len(fields) + 0.4, 0.62 * panel_w * aspect * 1.14 + 1.0)
        self.pixels: dict = {}

    def render(self, frame, label: str = "") -> np.ndarray:
        import matplotlib.pyplot as plt
        from matplotlib.collections import LineCollection
        from matplotlib.tri import Triangulation

        pts, tri = np.asarray(frame.points)[:, :2], np.asarray(frame.cells)[:, :3]
        grain = frame.cell_data.get("grain_id")
        gb = grain_boundaries(tri, grain)
        outline = interface_edges(tri, np.zeros(len(tri), dtype=np.int64))
        tr = Triangulation(pts[:, 0], pts[:, 1], tri)
        fig, axes = plt.subplots(1, len(self.fields), figsize=self.figsize, dpi=DPI)
        axes = np.atleast_1d(axes)
        (x0, y0), (w, h) = self.lo, self.span
        bar_y = y0 - 0.07 * h
        bar_x0 = x0 + 0.05 * w
        info = {"scale_bar_um": self.bar_um, "panels": []}
        for ax, (name, title, cmap) in zip(axes, self.fields):
            where, vals = _field(frame, name)
            if vals is None:
                ax.set_title(f"{title}: not written", fontsize=9)
                im = None
            else:
                im = ax.tripcolor(tr, vals, cmap=cmap, vmin=0.0, vmax=1.0,
                                  shading="gouraud" if where == "point" else "flat")
            if len(outline):
                ax.add_collection(LineCollection(pts[outline], colors="0.35", linewidths=0.8))
            if len(gb):
                ax.add_collection(LineCollection(pts[gb], colors="black", linewidths=1.4))
            ax.plot([bar_x0, bar_x0 + self.bar_um], [bar_y, bar_y], color="black", lw=4, solid_capstyle="butt")
            ax.text(bar_x0 + self.bar_um + 0.04 * w, bar_y, _label(self.bar_um), va="center", ha="left", fontsize=9)
            ax.set_xlim(x0 - 0.02 * w, x0 + 1.02 * w)
            ax.set_ylim(y0 - 0.12 * h, y0 + 1.02 * h)
            ax.set_aspect("equal")
            ax.set_axis_off()
            ax.set_title(title, fontsize=10)
            if im is not None:
                fig.colorbar(im, ax=ax, shrink=0.7, pad=0.02, ticks=[0.0, 0.5, 1.0])
        fig.suptitle(label, fontsize=10)
        fig.canvas.draw()
        img = np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()
        height = img.shape[0]

        def to_px(ax, xy):
            disp = ax.transData.transform(np.atleast_2d(xy))
            return np.column_stack([height - disp[:, 1], disp[:, 0]])  # (row, col)

        for ax in axes:
            bar = to_px(ax, [[bar_x0, bar_y], [bar_x0 + self.bar_um, bar_y]])
            mids = 0.5 * (pts[gb[:, 0]] + pts[gb[:, 1]]) if len(gb) else np.zeros((0, 2))
            info["panels"].append({
                "scale_bar_px": (float(bar[0, 0]), float(bar[0, 1]), float(bar[1, 1])),
                "um_per_px": float(self.bar_um / max(bar[1, 1] - bar[0, 1], 1e-30)),
                "grain_boundary_px": to_px(ax, mids) if len(mids) else np.zeros((0, 2)),
            })
        info["grain_boundary_segments"] = int(len(gb))
        self.pixels = info
        plt.close(fig)
        return img


def _frame_indices(n: int, max_frames: int = MAX_FRAMES) -> list[int]:
    if n <= max_frames:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, max_frames).round().astype(int).tolist()))


def write_mp4(path: Path, frames: list[np.ndarray], fps: int = FPS) -> str | None:
    """H.264 MP4 through ffmpeg's stdin (raw RGB). Returns None on success,
    else why there is no MP4."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return "ffmpeg not found"
    if not frames:
        return "no frames"
    h, w = frames[0].shape[:2]
    cmd = [exe, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", str(fps), "-i", "-", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2:color=white",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path)]
    try:
        proc = subprocess.run(cmd, input=b"".join(np.ascontiguousarray(f).tobytes() for f in frames),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        Path(path).unlink(missing_ok=True)
        return f"ffmpeg failed ({type(exc).__name__})"
    if proc.returncode != 0:
        Path(path).unlink(missing_ok=True)
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        return f"ffmpeg failed ({err[-1][:120] if err else f'exit {proc.returncode}'})"
    return None


def animate(directory: Path, figs: Path, mp4: bool = True, max_frames: int = MAX_FRAMES,
            fps: int = FPS) -> dict | None:
    """Write figs/animation.gif (and figs/animation.mp4 if ffmpeg exists)
    from every output time of directory/fields.xdmf. Returns the metadata
    (see the module doc), or None when there is nothing to animate (no
    field file, or a 3D run without a display or Xvfb). A 3D run
    (tetrahedra) is drawn with pyvista, at most MAX_FRAMES_3D frames
    (solver/report/render3d.py); its metadata has grain_boundary_faces
    instead of grain_boundary_segments and no first_frame pixels."""

    from ..io.series import RunSeries

    figs = Path(figs)
    frames, times, first_pixels = [], [], None
    renderer = None
    with RunSeries(Path(directory)) as series:  # fields.xdmf and the segments of later meshes, whichever exist
        if not len(series):
            return None
        if series.frame(0).cell_type == "tetrahedron":
            return _animate_3d(series, figs, mp4, min(max_frames, MAX_FRAMES_3D), fps)
        for k in _frame_indices(len(series), max_frames):
            fr = series.frame(k)
            if fr.cell_type != "triangle":
                return None
            if renderer is None:
                renderer = FrameRenderer(np.asarray(fr.points))
            frames.append(renderer.render(fr, f"t = {fr.t:.4g} s   ({k + 1} of {len(series)} outputs)"))
            times.append(fr.t)
            if first_pixels is None:
                first_pixels = renderer.pixels
        total = len(series)
    if not frames:
        return None
    return {**_write_movies(figs, frames, times, total, mp4, fps), "scale_bar_um": renderer.bar_um,
            "grain_boundary_segments": first_pixels["grain_boundary_segments"], "first_frame": first_pixels}


def _write_movies(figs: Path, frames: list, times: list, outputs: int, mp4: bool, fps: int) -> dict:
    """figs/animation.gif (and .mp4 when asked and ffmpeg exists) from the
    frames; returns the metadata shared by the 2D and 3D animations."""
    import imageio.v3 as iio

    gif = figs / "animation.gif"
    iio.imwrite(gif, np.stack(frames), extension=".gif", duration=int(1000 / fps), loop=0)
    mp4_path = figs / "animation.mp4"
    mp4_note = write_mp4(mp4_path, frames, fps) if mp4 else "not asked for"
    return {"gif": gif, "mp4": mp4_path if mp4_note is None else None, "mp4_note": mp4_note,
            "frames": len(frames), "outputs": outputs, "times_s": times, "size_px": tuple(frames[0].shape[:2])}


def _animate_3d(series, figs: Path, mp4: bool, max_frames: int, fps: int) -> dict | None:
    """The animation of a 3D run: every frame is the three-panel picture of
    solver/report/render3d.py (xi = 0.5 isosurface, cells with d > 0.5,
    grain boundaries, mid-plane slices of xi and d, scale bar in um), drawn
    with pyvista under headless(); None without a display or Xvfb."""

    from .render import headless
    from .render3d import snapshot_3d

    frames, times, meta0 = [], [], None
    with headless() as ok:
        if not ok:
            return None
        for k in _frame_indices(len(series), max_frames):
            fr = series.frame(k)
            meta = snapshot_3d(None, fr, title=f"t = {fr.t:.4g} s   ({k + 1} of {len(series)} outputs)")
            frames.append(meta["image"])
            times.append(fr.t)
            meta0 = meta0 or meta
    if not frames:
        return None
    return {**_write_movies(figs, frames, times, len(series), mp4, fps), "scale_bar_um": meta0["scale_bar_um"],
            "grain_boundary_faces": meta0["grain_boundary_faces"], "first_frame": None}
