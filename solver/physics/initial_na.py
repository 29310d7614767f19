"""Initial Na metal phase xi0(x) from ``electrochemistry.initial_na``.

Each item gives a shape with a signed distance s(x) (negative inside, in
micrometres); the phase is the equilibrium profile of the Allen-Cahn energy
g(xi) = W xi^2 (1 - xi)^2, kappa |grad xi|^2 / 2 with W = 12 gamma/delta,
kappa = 3 gamma delta/2:

    xi = (1 - tanh(2 s / delta)) / 2          (sqrt(W / (2 kappa)) = 2 / delta)

Several items combine by the pointwise maximum. Shapes:

- ``layer``   metal on the plating electrode (y = 0): s = y - thickness
- ``circle``  s = |x - c| - R
- ``ellipse`` semi-axes (radius, radius_b), axis a rotated by ``angle`` from x;
  s = (rho - 1) / |grad rho| with rho = sqrt((x'/a)^2 + (y'/b)^2) (first-order
  signed distance, exact on the axes)
- ``flaws``   every ``mesh.flaws`` entry with ``filled_with_na: true``:
  notch/slot = a capsule from (x0, 0) along (sin angle, cos angle) of total
  depth ``length`` and width ``width``; crack = a capsule of total length
  ``length`` centred at ``center`` along (cos angle, sin angle); ellipse/pore
  = an ellipse with full axes ``length`` x ``width`` rotated by ``angle``.

No DOLFINx here: functions take coordinate arrays (um) and return numpy
arrays, so they are testable on their own. Config lengths are SI metres.
"""

from __future__ import annotations

import numpy as np

from .. import scales


def tanh_profile(s: np.ndarray, delta: float) -> np.ndarray:
    """xi = (1 - tanh(2 s / delta)) / 2 for signed distance s (same units as delta)."""
    return 0.5 * (1.0 - np.tanh(2.0 * np.asarray(s) / delta))


def _rotate(x: np.ndarray, y: np.ndarray, angle: float):
    c, s = np.cos(angle), np.sin(angle)
    return c * x + s * y, -s * x + c * y


def sd_ellipse(x, y, cx, cy, a, b, angle=0.0):
    """Approximate signed distance to an ellipse (semi-axes a, b; a along angle)."""
    xr, yr = _rotate(x - cx, y - cy, angle)
    rho = np.sqrt((xr / a) ** 2 + (yr / b) ** 2)
    grad = np.sqrt((xr / a**2) ** 2 + (yr / b**2) ** 2) / np.maximum(rho, 1e-300)
    grad = np.where(rho > 1e-12, grad, 1.0 / min(a, b))
    return (rho - 1.0) / grad


def sd_capsule(x, y, p0, p1, radius):
    """Signed distance to the capsule of ``radius`` around segment p0-p1."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    L2 = float(d @ d)
    t = np.zeros_like(x) if L2 == 0 else np.clip(((x - p0[0]) * d[0] + (y - p0[1]) * d[1]) / L2, 0.0, 1.0)
    qx, qy = p0[0] + t * d[0], p0[1] + t * d[1]
    return np.hypot(x - qx, y - qy) - radius


def flaw_distance(flaw, x, y):
    """Signed distance [um] of a config ``Flaw`` (SI lengths) at points (x, y) [um]."""
    L = scales.length(flaw.length)
    w = scales.length(flaw.width)
    cx, cy = (scales.length(flaw.center[0]), scales.length(flaw.center[1])) if flaw.center else (0.0, 0.0)
    r = 0.5 * w
    if flaw.type in ("notch", "slot"):
        d = np.array([np.sin(flaw.angle), np.cos(flaw.angle)])
        p0 = np.array([cx, cy]) - r * d  # extends below the electrode: flat mouth
        p1 = np.array([cx, cy]) + max(L - r, 0.0) * d
        return sd_capsule(x, y, p0, p1, r)
    if flaw.type == "crack":
        d = np.array([np.cos(flaw.angle), np.sin(flaw.angle)])
        half = max(0.5 * L - r, 0.0)
        return sd_capsule(x, y, np.array([cx, cy]) - half * d, np.array([cx, cy]) + half * d, r)
    return sd_ellipse(x, y, cx, cy, 0.5 * L, 0.5 * w, flaw.angle)


def signed_distance(item, cfg, x, y):
    """Signed distance [um] of one ``InitialNa`` item (None: nothing)."""
    if item.type == "layer":  # thickness + A cos(2 pi x / lambda): vertical distance (slopes << 1)
        top = scales.length(item.thickness)
        if item.amplitude > 0.0:
            top = top + scales.length(item.amplitude) * np.cos(2.0 * np.pi * x / scales.length(item.wavelength))
        return y - top
    cx, cy = (scales.length(item.center[0]), scales.length(item.center[1])) if item.center else (0.0, 0.0)
    if item.type == "circle":
        return np.hypot(x - cx, y - cy) - scales.length(item.radius)
    if item.type == "ellipse":
        return sd_ellipse(x, y, cx, cy, scales.length(item.radius), scales.length(item.radius_b), item.angle)
    if item.type == "flaws":
        filled = [f for f in cfg.mesh.flaws if f.filled_with_na]
        if not filled:
            return None
        return np.min([flaw_distance(f, x, y) for f in filled], axis=0)
    raise ValueError(f"unknown initial_na type {item.type!r}")


def flaw_distance_3d(cfg, points_um: np.ndarray):
    """3D: signed distance [um] to the Na-filled flaws (meshes.flaws3d shapes), None without any."""
    from meshes import flaws3d

    m = cfg.mesh
    W, H, D = (scales.length(v) for v in (m.width, m.height, m.depth))
    filled = [flaws3d.flaw_spec_3d(f, W, H, D) for f in m.flaws if f.filled_with_na]
    if not filled:
        return None
    return np.min([flaws3d.signed_distance(f, points_um, H) for f in filled], axis=0)


def initial_xi(cfg, points_um: np.ndarray) -> np.ndarray:
    """xi0 at points [um] (N x 2 or N x 3): max over the initial_na items."""
    x, y = points_um[:, 0], points_um[:, 1]
    delta = scales.length(cfg.electrochemistry.interface_width)
    xi = np.zeros(len(x))
    for item in cfg.electrochemistry.initial_na:
        if item.type == "flaws" and cfg.mesh.dim == 3:
            s = flaw_distance_3d(cfg, points_um)
        else:
            s = signed_distance(item, cfg, x, y)
        if s is not None:
            xi = np.maximum(xi, tanh_profile(s, delta))
    return xi
