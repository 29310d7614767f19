"""Conduction-plane orientation per grain.

2D: the angle theta in [0, pi) of the conduction planes, a = (cos, sin)
along the planes and m = (-sin, cos) the plane normal (c-axis).
3D: the c-axis unit vector m, uniform on the half sphere.
"""

from __future__ import annotations

import numpy as np


def grain_angles(n: int, mode: str = "random", seed: int = 1, angles=None) -> np.ndarray:
    """Angles theta_g in [0, pi) [rad] for grains 1..n (array index g-1).

    ``random``: independent uniform draws. ``stratified``: one draw in each of
    n equal sub-intervals of [0, pi), shuffled (isotropic even for small n).
    ``given``: the list ``angles`` (one per grain), wrapped into [0, pi).
    """
    rng = np.random.default_rng(seed)
    if mode == "given":
        if angles is None or len(angles) != n:
            got = 0 if angles is None else len(angles)
            raise ValueError(f"mesh.orientation.angles: expected {n} angles (one per grain), got {got}")
        return np.mod(np.asarray(angles, dtype=float), np.pi)
    if mode == "random":
        return rng.uniform(0.0, np.pi, size=n)
    if mode == "stratified":
        theta = (np.arange(n) + rng.uniform(0.0, 1.0, size=n)) * np.pi / n
        return rng.permutation(theta)
    raise ValueError(f"mesh.orientation.mode = {mode!r}: expected random, stratified or given")


def c_axes(n: int, mode: str = "random", seed: int = 1, axes=None) -> np.ndarray:
    """Unit c-axis vectors (n, 3), uniform on the sphere (sign-free, m_z >= 0).

    ``random``: isotropic normal draws, normalised. ``stratified``: m_z = cos
    of the polar angle stratified in n equal bins of [0, 1] (uniform on the
    half sphere), azimuth stratified in n bins of [0, 2 pi), both shuffled.
    ``given``: the list ``axes`` (n vectors), normalised.
    """
    if mode == "given":
        if axes is None or len(axes) != n:
            got = 0 if axes is None else len(axes)
            raise ValueError(f"mesh.orientation.axes: expected {n} c-axis vectors (one per grain), got {got}")
        v = np.asarray(axes, dtype=float).reshape(n, 3)
    elif mode == "stratified":
        rng = np.random.default_rng(seed)
        z = rng.permutation((np.arange(n) + rng.uniform(size=n)) / n)
        phi = rng.permutation((np.arange(n) + rng.uniform(size=n)) * 2 * np.pi / n)
        r = np.sqrt(np.clip(1 - z * z, 0, None))
        v = np.column_stack([r * np.cos(phi), r * np.sin(phi), z])
    elif mode == "random":
        rng = np.random.default_rng(seed)
        v = rng.normal(size=(n, 3))
    else:
        raise ValueError(f"mesh.orientation.mode = {mode!r}: expected random, stratified or given")
    v = v / np.linalg.norm(v, axis=1)[:, None]
    v[v[:, 2] < 0] *= -1.0
    return v
