"""Flaw shapes (2D, micrometres): notch/slot, crack, ellipse/pore.

A flaw is a dict ``{type, center: [x, y], length, width, angle,
filled_with_na}`` in um and rad (the sidecar stores exactly this).

- ``notch`` / ``slot``: starts at an electrode (center = (x, 0) or (x, H)),
  runs ``length`` into the electrolyte along (sin a, +-cos a) (angle a from
  the y axis), width ``width``, round tip of radius width/2: the set of
  points within width/2 of the segment from the electrode to
  base + (length - width/2) d.
- ``crack``: a thin slot (stadium) of tip-to-tip ``length`` and ``width``,
  long axis at ``angle`` from x: points within width/2 of a segment of
  length (length - width).
- ``ellipse`` / ``pore``: semi-axes length/2 (along ``angle`` from x) and
  width/2.

All shapes are convex, which ``inside`` and the grain-removal check use.
"""

from __future__ import annotations

import numpy as np

NOTCH_TYPES = ("notch", "slot")


def flaw_spec(f, width: float, height: float) -> dict:
    """Flaw config (SI, pydantic Flaw or dict) -> flaw dict in um."""
    get = (lambda k: f.get(k)) if isinstance(f, dict) else (lambda k: getattr(f, k))
    ftype = get("type")
    center = get("center")
    if center is None:
        center = (width / 2.0, 0.0) if ftype in NOTCH_TYPES else (width / 2.0, height / 2.0)
    else:
        center = (center[0] * 1e6, center[1] * 1e6)
    return {
        "type": ftype,
        "center": [float(center[0]), float(center[1])],
        "length": float(get("length")) * 1e6,
        "width": float(get("width")) * 1e6,
        "angle": float(get("angle") or 0.0),
        "filled_with_na": bool(get("filled_with_na") or False),
    }


def _notch_axis(f: dict, height: float):
    """(base point, unit direction into the electrolyte, electrode y)."""
    a = f["angle"]
    x0, y0 = f["center"]
    top = abs(y0 - height) < abs(y0)
    d = np.array([np.sin(a), -np.cos(a)]) if top else np.array([np.sin(a), np.cos(a)])
    return np.array([x0, height if top else 0.0]), d


def segment(f: dict, height: float):
    """Core segment (p0, p1) and radius r of a capsule-shaped flaw."""
    r = 0.5 * f["width"]
    if f["type"] in NOTCH_TYPES:
        base, d = _notch_axis(f, height)
        return base - 2.0 * r * d, base + max(f["length"] - r, 0.0) * d, r
    c = np.asarray(f["center"], dtype=float)
    half = max(0.5 * f["length"] - r, 0.0)
    e = np.array([np.cos(f["angle"]), np.sin(f["angle"])])
    return c - half * e, c + half * e, r


def inside(f: dict, pts: np.ndarray, height: float, pad: float = 0.0) -> np.ndarray:
    """Mask of points (n, 2) [um] inside the flaw (grown by ``pad``)."""
    pts = np.asarray(pts, dtype=float)[:, :2]
    if f["type"] in ("ellipse", "pore"):
        a, b = 0.5 * f["length"] + pad, 0.5 * f["width"] + pad
        c, s = np.cos(f["angle"]), np.sin(f["angle"])
        d = pts - np.asarray(f["center"])
        u, v = d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    p0, p1, r = segment(f, height)
    return distance_to_segment(pts, p0, p1) <= r + pad


def distance_to_segment(pts: np.ndarray, p0, p1) -> np.ndarray:
    d = np.asarray(p1) - np.asarray(p0)
    L2 = float(d @ d)
    if L2 == 0.0:
        return np.linalg.norm(pts - p0, axis=1)
    t = np.clip(((pts - p0) @ d) / L2, 0.0, 1.0)
    return np.linalg.norm(pts - (p0 + t[:, None] * d), axis=1)


def outline(f: dict, height: float, n: int = 96) -> np.ndarray:
    """Closed outline polygon (n, 2) [um] of the flaw (notches: the part
    beyond the electrode is included)."""
    if f["type"] in ("ellipse", "pore"):
        t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
        a, b = 0.5 * f["length"], 0.5 * f["width"]
        c, s = np.cos(f["angle"]), np.sin(f["angle"])
        u, v = a * np.cos(t), b * np.sin(t)
        return np.column_stack([f["center"][0] + c * u - s * v, f["center"][1] + s * u + c * v])
    p0, p1, r = segment(f, height)
    d = p1 - p0
    phi = np.arctan2(d[1], d[0]) if np.linalg.norm(d) > 0 else 0.0
    half = n // 2
    t1 = phi - np.pi / 2 + np.linspace(0, np.pi, half)
    t0 = phi + np.pi / 2 + np.linspace(0, np.pi, n - half)
    return np.vstack([p1 + r * np.column_stack([np.cos(t1), np.sin(t1)]),
                      p0 + r * np.column_stack([np.cos(t0), np.sin(t0)])])


def area(f: dict, height: float) -> float:
    """Exact area [um^2] of the part of the flaw inside the electrolyte
    (notch: a rectangle from the electrode plus a half disc, for angle 0)."""
    r = 0.5 * f["width"]
    if f["type"] in ("ellipse", "pore"):
        return np.pi * 0.25 * f["length"] * f["width"]
    if f["type"] in NOTCH_TYPES:
        return 2 * r * (f["length"] - r) + 0.5 * np.pi * r * r
    return 2 * r * (f["length"] - 2 * r) + np.pi * r * r


def check(flaws: list[dict], width: float, height: float, h_fine: float) -> list[str]:
    """One-line problems (key, value, what was expected) for bad flaws."""
    problems = []
    margin = 0.5 * h_fine
    for i, f in enumerate(flaws):
        key = f"mesh.flaws[{i}]"
        t = f["type"]
        if f["width"] < 0.5 * h_fine:
            problems.append(f"{key}.width = {f['width']:g} um: below h_fine/2 = {0.5 * h_fine:g} um, the flaw "
                            "cannot be resolved; expected width >= h_fine/2 (or a smaller mesh.h_fine)")
        if t in NOTCH_TYPES:
            x0, y0 = f["center"]
            if min(abs(y0), abs(y0 - height)) > 1e-6 * height:
                problems.append(f"{key}.center = ({x0 * 1e-6:g}, {y0 * 1e-6:g}) m: a {t} starts at an electrode; "
                                f"expected y = 0 or y = height = {height * 1e-6:g} m")
                continue
            if f["length"] <= 0.5 * f["width"]:
                problems.append(f"{key}.length = {f['length'] * 1e-6:g} m: expected a {t} deeper than half its "
                                f"width ({0.5 * f['width'] * 1e-6:g} m)")
                continue
            poly = _densify(outline(f, height))
            base, d = _notch_axis(f, height)
            poly = poly[(poly - base) @ d > 0.0]  # the part inside the electrolyte
        else:
            if t == "crack" and f["length"] < f["width"]:
                problems.append(f"{key}.length = {f['length'] * 1e-6:g} m: a crack longer than its width expected "
                                f"(width {f['width'] * 1e-6:g} m); use type ellipse or pore for round flaws")
                continue
            poly = outline(f, height)
        lo, hi = poly.min(axis=0), poly.max(axis=0)
        if t in NOTCH_TYPES:
            bad = lo[0] < margin or hi[0] > width - margin or (hi[1] - lo[1]) > height - margin
        else:
            bad = lo[0] < margin or lo[1] < margin or hi[0] > width - margin or hi[1] > height - margin
        if bad:
            problems.append(
                f"{key}.center = ({f['center'][0] * 1e-6:g}, {f['center'][1] * 1e-6:g}) m: the {t} "
                f"(length {f['length'] * 1e-6:g} m, width {f['width'] * 1e-6:g} m, angle {f['angle']:g} rad) "
                f"reaches outside the box [0, {width * 1e-6:g}] x [0, {height * 1e-6:g}] m; expected it inside, "
                f"at least h_fine/2 = {margin * 1e-6:g} m from the sides"
            )
    return problems


def _densify(poly: np.ndarray, k: int = 50) -> np.ndarray:
    """Points along every side of a closed polygon (k per side)."""
    t = np.linspace(0.0, 1.0, k, endpoint=False)[:, None, None]
    nxt = np.roll(poly, -1, axis=0)
    return (poly[None] + t * (nxt - poly)[None]).reshape(-1, 2)


def occ_surface(f: dict, height: float) -> int:
    """The flaw as a gmsh OCC plane surface (returns its tag).

    Capsules are fused from a rectangle and two discs; the fuse output tag
    is read from its return value (never assumed).
    """
    import gmsh

    occ = gmsh.model.occ
    if f["type"] in ("ellipse", "pore"):
        a, b, rot = 0.5 * f["length"], 0.5 * f["width"], f["angle"]
        if b > a:
            a, b, rot = b, a, rot + 0.5 * np.pi
        cx, cy = f["center"]
        s = occ.addDisk(cx, cy, 0.0, a, b)
        occ.rotate([(2, s)], cx, cy, 0.0, 0.0, 0.0, 1.0, rot)
        return s
    p0, p1, r = segment(f, height)
    d = p1 - p0
    L = float(np.linalg.norm(d))
    if L <= 1e-12 * max(r, 1.0):
        return occ.addDisk(p0[0], p0[1], 0.0, r, r)
    rect = occ.addRectangle(0.0, -r, 0.0, L, 2 * r)
    c0 = occ.addDisk(0.0, 0.0, 0.0, r, r)
    c1 = occ.addDisk(L, 0.0, 0.0, r, r)
    out, _ = occ.fuse([(2, rect)], [(2, c0), (2, c1)])
    if len(out) != 1:
        raise RuntimeError(f"flaw {f['type']}: fuse gave {len(out)} surfaces, expected 1")
    occ.rotate(out, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, float(np.arctan2(d[1], d[0])))
    occ.translate(out, float(p0[0]), float(p0[1]), 0.0)
    return out[0][1]
