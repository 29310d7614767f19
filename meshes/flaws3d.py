"""Flaw shapes in 3D (micrometres): the 2D ``mesh.flaws`` entries as solids.

A 3D flaw is the 2D flaw dict (``meshes.flaws.flaw_spec``: type, center
[x, y], length, width, angle, filled_with_na) plus ``z`` (the depth of its
centre, default the middle of the box). Shapes (all convex):

- ``notch``: a surface pit: a round rod of diameter ``width`` from the
  electrode at (x, 0 or H, z) into the electrolyte along (sin a, +-cos a, 0),
  total depth ``length``, hemispherical tip (the 3D capsule);
- ``slot``: a through-thickness slot: the 2D notch capsule extruded over
  the whole depth z = 0..D (the 2D notch in a slab);
- ``crack``: a penny-shaped crack: a coin of diameter ``length`` and
  thickness ``width`` with a round rim (radius width/2: the 2D stadium
  revolved about the crack normal), its plane containing z and the
  direction (cos a, sin a, 0) (a crack at angle a from x, as in 2D);
- ``ellipse`` / ``pore``: a spheroid with axis ``length`` along
  (cos a, sin a, 0) and the two other axes ``width`` (a sphere when
  length = width).

``signed_distance(f, pts, H)`` (negative inside, exact for capsules and
the coin, first order for spheroids as ``solver.physics.initial_na.sd_ellipse``)
starts Na-filled flaws as metal; ``occ_volume`` builds the gmsh solid.
"""

from __future__ import annotations

import numpy as np

from . import flaws as flawlib


def flaw_spec_3d(f, width: float, height: float, depth: float) -> dict:
    """Flaw config (SI) -> 3D flaw dict in um (the 2D dict + z)."""
    spec = flawlib.flaw_spec(f, width, height)
    z = f.get("z") if isinstance(f, dict) else getattr(f, "z", None)
    spec["z"] = float(z) * 1e6 if z is not None else 0.5 * depth
    return spec


def _axis(f) -> np.ndarray:
    return np.array([np.cos(f["angle"]), np.sin(f["angle"]), 0.0])


def notch_segment(f: dict, height: float):
    """(p0, p1, r) of a notch rod: from 2r outside the electrode to the
    centre of its tip sphere."""
    r = 0.5 * f["width"]
    base2, d2 = flawlib._notch_axis(f, height)
    base = np.array([base2[0], base2[1], f["z"]])
    d = np.array([d2[0], d2[1], 0.0])
    return base - 2.0 * r * d, base + max(f["length"] - r, 0.0) * d, r


def _spheroid_axes(f):
    """(centre, unit axes (3, 3) as rows, semi-axes (3,)) of crack / ellipse."""
    c = np.array([f["center"][0], f["center"][1], f["z"]])
    a = _axis(f)
    b = np.array([-a[1], a[0], 0.0])
    e = np.array([0.0, 0.0, 1.0])
    L, w = 0.5 * f["length"], 0.5 * f["width"]
    if f["type"] == "crack":  # disc: wide along a and z, thin along b
        return c, np.vstack([a, b, e]), np.array([L, w, L])
    return c, np.vstack([a, b, e]), np.array([L, w, w])


def signed_distance(f: dict, pts: np.ndarray, height: float) -> np.ndarray:
    """Signed distance [um] (negative inside) of points (n, 3) [um]."""
    pts = np.asarray(pts, float)
    t = f["type"]
    if t == "notch":
        p0, p1, r = notch_segment(f, height)
        return flawlib.distance_to_segment(pts, p0, p1) - r
    if t == "slot":
        p0, p1, r = flawlib.segment(f, height)
        return flawlib.distance_to_segment(pts[:, :2], p0, p1) - r
    c, ax, s = _spheroid_axes(f)
    q = (pts - c) @ ax.T  # local coordinates
    if t == "crack":  # distance to the mid-plane disc of radius R - r, minus r
        r = 0.5 * f["width"]
        radial = np.hypot(q[:, 0], q[:, 2])
        return np.hypot(np.maximum(radial - (0.5 * f["length"] - r), 0.0), q[:, 1]) - r
    rho = np.sqrt(((q / s) ** 2).sum(axis=1))
    grad = np.sqrt(((q / s**2) ** 2).sum(axis=1)) / np.maximum(rho, 1e-300)
    grad = np.where(rho > 1e-12, grad, 1.0 / s.min())
    return (rho - 1.0) / grad


def bounding_box(f: dict, height: float, depth: float):
    """(lo, hi) corners [um] of the part of the flaw in the box."""
    t = f["type"]
    if t == "notch":
        p0, p1, r = notch_segment(f, height)
        pts = np.vstack([p0, p1])
        return pts.min(axis=0) - r, pts.max(axis=0) + r
    if t == "slot":
        p0, p1, r = flawlib.segment(f, height)
        pts = np.vstack([p0, p1])
        lo, hi = pts.min(axis=0) - r, pts.max(axis=0) + r
        return np.array([lo[0], lo[1], 0.0]), np.array([hi[0], hi[1], depth])
    c, ax, s = _spheroid_axes(f)
    if t == "crack":
        half = (np.abs(ax) * s[:, None]).sum(axis=0)  # a box around the coin
        return c - half, c + half
    half = np.sqrt(((ax * s[:, None]) ** 2).sum(axis=0))  # extent of an ellipsoid along x, y, z
    return c - half, c + half


def check(flaws: list[dict], box, h_fine: float) -> list[str]:
    """One-line problems for bad 3D flaws (key, value, expectation)."""
    W, H, D = box
    problems = []
    margin = 0.5 * h_fine
    for i, f in enumerate(flaws):
        key = f"mesh.flaws[{i}]"
        t = f["type"]
        if f["width"] < 0.5 * h_fine:
            problems.append(f"{key}.width = {f['width'] * 1e-6:g} m: below h_fine/2 = {margin * 1e-6:g} m, the flaw "
                            "cannot be resolved; expected width >= h_fine/2 (or a smaller mesh.h_fine)")
            continue
        if t in flawlib.NOTCH_TYPES:
            x0, y0 = f["center"]
            if min(abs(y0), abs(y0 - H)) > 1e-6 * H:
                problems.append(f"{key}.center = ({x0 * 1e-6:g}, {y0 * 1e-6:g}) m: a {t} starts at an electrode; "
                                f"expected y = 0 or y = height = {H * 1e-6:g} m")
                continue
            if f["length"] <= 0.5 * f["width"]:
                problems.append(f"{key}.length = {f['length'] * 1e-6:g} m: expected a {t} deeper than half its "
                                f"width ({0.5 * f['width'] * 1e-6:g} m)")
                continue
        elif t == "crack" and f["length"] < f["width"]:
            problems.append(f"{key}.length = {f['length'] * 1e-6:g} m: a penny crack wider than it is thick "
                            f"expected (width {f['width'] * 1e-6:g} m); use type pore for round flaws")
            continue
        lo, hi = bounding_box(f, H, D)
        if t in flawlib.NOTCH_TYPES:  # the mouth is on the electrode, the rest inside
            lo = np.array([lo[0], max(lo[1], 0.0), lo[2]])
            hi = np.array([hi[0], min(hi[1], H), hi[2]])
            bad = (lo[0] < margin or hi[0] > W - margin or hi[1] - lo[1] > H - margin
                   or (t == "notch" and (lo[2] < margin or hi[2] > D - margin)))
        else:
            bad = bool(np.any(lo < margin) or np.any(hi > np.array([W, H, D]) - margin))
        if bad:
            problems.append(
                f"{key}.center = ({f['center'][0] * 1e-6:g}, {f['center'][1] * 1e-6:g}) m, z = {f['z'] * 1e-6:g} m: "
                f"the {t} (length {f['length'] * 1e-6:g} m, width {f['width'] * 1e-6:g} m) reaches outside the box "
                f"[0, {W * 1e-6:g}] x [0, {H * 1e-6:g}] x [0, {D * 1e-6:g}] m; expected it inside, at least "
                f"h_fine/2 = {margin * 1e-6:g} m from the sides")
    return problems


def volume(f: dict, height: float, depth: float) -> float:
    """Exact volume [um^3] of the flaw inside the box (notch: rod from the
    electrode + hemisphere; slot: the 2D area x depth)."""
    r = 0.5 * f["width"]
    t = f["type"]
    if t == "notch":
        return np.pi * r * r * (f["length"] - r) + 2.0 / 3.0 * np.pi * r**3
    if t == "slot":
        return flawlib.area(f, height) * depth
    if t == "crack":  # Pappus: a cylinder R'^2 pi 2r plus the outer half disc of the rim revolved
        Rp = 0.5 * f["length"] - r
        return np.pi * Rp**2 * 2.0 * r + 2.0 * np.pi * (Rp + 4.0 * r / (3.0 * np.pi)) * 0.5 * np.pi * r * r
    _, _, s = _spheroid_axes(f)
    return 4.0 / 3.0 * np.pi * float(np.prod(s))


def occ_volume(f: dict, height: float, depth: float) -> int:
    """The flaw as a gmsh OCC volume (returns its tag)."""
    import gmsh

    occ = gmsh.model.occ
    t = f["type"]
    if t == "slot":
        s = flawlib.occ_surface(f, height)
        out = occ.extrude([(2, s)], 0.0, 0.0, depth)
        vols = [tag for d, tag in out if d == 3]
        if len(vols) != 1:
            raise RuntimeError(f"slot: extrusion gave {len(vols)} volumes, expected 1")
        return vols[0]
    if t == "notch":
        p0, p1, r = notch_segment(f, height)
        d = p1 - p0
        cyl = occ.addCylinder(*p0, *d, r)
        tip = occ.addSphere(*p1, r)
        out, _ = occ.fuse([(3, cyl)], [(3, tip)])
        if len(out) != 1:
            raise RuntimeError(f"notch: fuse gave {len(out)} volumes, expected 1")
        return out[0][1]
    c, ax, s = _spheroid_axes(f)
    if t == "crack":  # coin along local z, then z -> crack normal b, x -> a
        r = 0.5 * f["width"]
        Rp = 0.5 * f["length"] - r
        parts = [(3, occ.addTorus(0.0, 0.0, 0.0, Rp, r))] if Rp > 1e-9 * r else []
        cyl = occ.addCylinder(0.0, 0.0, -r, 0.0, 0.0, 2.0 * r, Rp) if Rp > 1e-9 * r else occ.addSphere(0, 0, 0, r)
        out = [(3, cyl)]
        if parts:
            out, _ = occ.fuse([(3, cyl)], parts)
        if len(out) != 1:
            raise RuntimeError(f"crack: fuse gave {len(out)} volumes, expected 1")
        occ.rotate(out, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, -0.5 * np.pi)
        occ.rotate(out, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, float(f["angle"]))
        occ.translate(out, *c)
        return out[0][1]
    sph = occ.addSphere(0.0, 0.0, 0.0, 1.0)
    occ.dilate([(3, sph)], 0.0, 0.0, 0.0, *s)
    occ.rotate([(3, sph)], 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, float(f["angle"]))
    occ.translate([(3, sph)], *c)
    return sph
