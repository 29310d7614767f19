"""Constitutive pieces of the mechanics (docs/model.md#mechanics).

All tensors are built as 3x3 UFL tensors: in 2D (plane strain) the strain is
embedded with eps_zz = 0, so the elastic strain eps_e = eps - eps* has
eps_e,zz = -eps_v h(xi) / 3 and sigma_zz is part of the stress (it enters the
hydrostatic pressure and the principal stresses).

Stiffness (internal units MPa). A transversely isotropic tensor about the unit
c-axis m (M = m m) is written in Spencer's form

    C:eps = lam tr(eps) I + 2 muT eps + alpha [ (m.eps.m) I + tr(eps) M ]
            + 2 (muL - muT) (M eps + eps M) + beta (m.eps.m) M

which is isotropic for alpha = beta = 0, muL = muT. Since C(xi, theta) =
h(xi) C_Na + (1 - h(xi)) C_SE(theta) and C_Na is isotropic, the interpolated
stiffness keeps this form with interpolated coefficients.

Splits of psi = 1/2 eps_e : C : eps_e into psi+ (degraded) and psi-:

- ``none``:  psi+ = psi, psi- = 0.
- ``volumetric_deviatoric`` (Amor 2009): psi- = K/2 <tr eps_e>_-^2 with
  K = I:C:I / 9 (the Voigt bulk modulus; exact Amor split when C is
  isotropic), psi+ = psi - psi-.
- ``spectral`` (Miehe 2010, isotropic C only):
  psi+- = lam/2 <tr eps_e>_+-^2 + mu eps_e+- : eps_e+-, with the principal
  strains in closed form (2D: the 2x2 block and eps_zz; 3D: Cardano,
  ``principal_values_3``) and sigma+- = dpsi+-/deps by UFL.

Stress sigma = g(d) dpsi+/deps + dpsi-/deps with g = (1-d)^2 + k_res.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import ufl

from .. import scales
from .phases import h_interp  # noqa: F401  (re-exported for the constitutive laws)


def pos(x):
    """Macaulay bracket <x>_+ (UFL)."""
    return ufl.conditional(ufl.gt(x, 0.0), x, 0.0)


def neg(x):
    """<x>_- = min(x, 0) (UFL)."""
    return ufl.conditional(ufl.lt(x, 0.0), x, 0.0)


def embed3(t2, tdim: int):
    """A 2x2 (plane strain) tensor as 3x3 with zero zz/xz/yz; 3D unchanged."""
    if tdim == 3:
        return t2
    return ufl.as_tensor([[t2[0, 0], t2[0, 1], 0.0], [t2[1, 0], t2[1, 1], 0.0], [0.0, 0.0, 0.0]])


def embed_vec3(v, tdim: int):
    if tdim == 3:
        return v
    return ufl.as_vector((v[0], v[1], 0.0))


def inplane(t3, tdim: int):
    """The tdim x tdim block of a 3x3 tensor (the in-plane stress in 2D)."""
    if tdim == 3:
        return t3
    return ufl.as_tensor([[t3[0, 0], t3[0, 1]], [t3[1, 0], t3[1, 1]]])


def strain3(u, tdim: int):
    """Total strain sym grad u as a 3x3 tensor (eps_zz = 0 in plane strain)."""
    return embed3(ufl.sym(ufl.grad(u)), tdim)


# --------------------------------------------------------------------------
# stiffness constants
# --------------------------------------------------------------------------
@dataclass
class TransverseConstants:
    """Spencer constants of a transversely isotropic stiffness [MPa]."""

    lam: float
    muT: float
    muL: float
    alpha: float = 0.0
    beta: float = 0.0

    @property
    def isotropic(self) -> bool:
        return self.alpha == 0.0 and self.beta == 0.0 and self.muL == self.muT

    def bulk(self) -> float:
        """Voigt bulk modulus K = I:C:I / 9."""
        return (9 * self.lam + 6 * self.muT + 6 * self.alpha + 4 * (self.muL - self.muT) + self.beta) / 9.0


def isotropic_constants(E: float, nu: float) -> TransverseConstants:
    """Lame constants from E [MPa] and nu."""
    lam = E * nu / ((1 + nu) * (1 - 2 * nu))
    mu = E / (2 * (1 + nu))
    return TransverseConstants(lam=lam, muT=mu, muL=mu)


def bulk_shear_constants(K: float, G: float) -> TransverseConstants:
    return TransverseConstants(lam=K - 2.0 * G / 3.0, muT=G, muL=G)


def transverse_constants(E_p: float, nu_p: float, E_c: float, G_c: float, nu_cp: float) -> TransverseConstants:
    """Spencer constants from engineering constants of a transversely isotropic
    solid with symmetry axis c: in-plane E_p, nu_p; E_c along c; G_c shear in
    planes containing c; nu_cp = -eps_plane / eps_c under uniaxial stress
    along c (so S13 = -nu_cp / E_c). Units of E, G: any (kept)."""
    S = np.array(
        [
            [1 / E_p, -nu_p / E_p, -nu_cp / E_c],
            [-nu_p / E_p, 1 / E_p, -nu_cp / E_c],
            [-nu_cp / E_c, -nu_cp / E_c, 1 / E_c],
        ]
    )
    C = np.linalg.inv(S)
    C11, C12, C13, C33 = C[0, 0], C[0, 1], C[0, 2], C[2, 2]
    C66 = 0.5 * (C11 - C12)
    C44 = G_c
    lam, muT, muL = C12, C66, C44
    alpha = C13 - lam
    beta = C33 - lam - 2 * alpha - 4 * (muL - muT) - 2 * muT
    if np.any(np.linalg.eigvalsh(C) <= 0) or C44 <= 0:
        raise ValueError("transversely isotropic constants are not positive definite")
    return TransverseConstants(lam=float(lam), muT=float(muT), muL=float(muL), alpha=float(alpha), beta=float(beta))


def electrolyte_constants(el) -> TransverseConstants:
    """C_SE [MPa] from ``materials.electrolyte`` (SI in the config)."""
    E = scales.stress(el.youngs_modulus)
    if el.stiffness == "isotropic":
        return isotropic_constants(E, el.poisson_ratio)
    return transverse_constants(
        E, el.poisson_ratio, scales.stress(el.youngs_modulus_c), scales.stress(el.shear_modulus_c), el.poisson_ratio_c
    )


def sodium_constants(na) -> TransverseConstants:
    """C_Na [MPa] from ``materials.sodium`` (K, G in Pa)."""
    return bulk_shear_constants(scales.stress(na.bulk_modulus), scales.stress(na.shear_modulus))


class Stiffness:
    """UFL stiffness of the metal/electrolyte mixture, acting on 3x3 strains.

    ``mixing="voigt"``: C = h C_Na + (1 - h) C_SE(m) (docs/model.md).
    ``mixing="reuss"`` (isotropic C_SE only): the compliances mix,
    1/K = h/K_Na + (1 - h)/K_SE and 1/G = h/G_Na + (1 - h)/G_SE, so a cell
    part-way to metal is already nearly as soft as the metal.
    ``m`` is the c-axis as a UFL 3-vector (only used when C_SE is anisotropic).
    ``factor`` scales the whole tensor (damaged_domain: 1 - (1 - f) d).
    """

    def __init__(self, se: TransverseConstants, na: TransverseConstants | None, h=None, m=None, factor=1.0,
                 msh=None, mixing: str = "voigt"):
        self.se, self.na = se, na
        self.isotropic = se.isotropic
        if mixing not in ("voigt", "reuss"):
            raise ValueError(f"unknown stiffness mixing {mixing!r}; expected 'voigt' or 'reuss'")
        if mixing == "reuss" and not se.isotropic:
            raise ValueError("stiffness mixing 'reuss' needs an isotropic electrolyte stiffness")
        if na is None or h is None:
            w_na, w_se = 0.0, 1.0
            na = TransverseConstants(0.0, 0.0, 0.0)
        else:
            w_na, w_se = h, 1.0 - h
        if msh is not None:
            # material constants as fem.Constant: the generated code does not
            # depend on their values (one JIT compilation for all parameter sets)
            from dolfinx import fem

            def c(v):
                return fem.Constant(msh, float(v))
        else:

            def c(v):
                return v

        if mixing == "reuss" and self.na is not None and h is not None:
            K = 1.0 / (w_na / c(na.bulk()) + w_se / c(se.bulk()))
            G = 1.0 / (w_na / c(na.muT) + w_se / c(se.muT))
            self.lam = factor * (K - 2.0 * G / 3.0)
            self.muT = self.muL = factor * G
            self.alpha = self.beta = 0.0
            self.m = m
            self.K = factor * K
            return
        self.lam = factor * (w_na * c(na.lam) + w_se * c(se.lam))
        self.muT = factor * (w_na * c(na.muT) + w_se * c(se.muT))
        self.muL = factor * (w_na * c(na.muL) + w_se * c(se.muL))
        self.alpha = factor * w_se * c(se.alpha)
        self.beta = factor * w_se * c(se.beta)
        self.m = m
        if not self.isotropic and m is None:
            raise ValueError("an anisotropic stiffness needs the c-axis m")
        self.K = factor * (w_na * c(na.bulk()) + w_se * c(se.bulk()))

    def __call__(self, eps):
        """C : eps (3x3)."""
        eye = ufl.Identity(3)
        s = self.lam * ufl.tr(eps) * eye + 2.0 * self.muT * eps
        if not self.isotropic:
            m = self.m
            M = ufl.outer(m, m)
            emm = ufl.dot(m, ufl.dot(eps, m))
            s = s + self.alpha * (emm * eye + ufl.tr(eps) * M)
            s = s + 2.0 * (self.muL - self.muT) * (ufl.dot(M, eps) + ufl.dot(eps, M)) + self.beta * emm * M
        return s


# --------------------------------------------------------------------------
# splits
# --------------------------------------------------------------------------
def _spectral_2x2(a, b, c):
    """Eigen-split of the symmetric [[a, c], [c, b]]: (e1, e2, positive part
    as 2x2 UFL tensor). Uses P+(eps) = (<e1>+ + <e2>+)/2 I + r (eps - tr/2 I)
    with r = (<e1>+ - <e2>+)/(e1 - e2) (bounded; its limit when e1 = e2)."""
    mean = 0.5 * (a + b)
    rad = ufl.sqrt(0.25 * (a - b) ** 2 + c**2 + 1e-30)
    e1, e2 = mean + rad, mean - rad
    r_lim = ufl.conditional(ufl.gt(e1, 0.0), 1.0, 0.0)
    r = ufl.conditional(ufl.gt(e1 - e2, 1e-12), (pos(e1) - pos(e2)) / (e1 - e2), r_lim)
    eye2 = ufl.Identity(2)
    E = ufl.as_tensor([[a, c], [c, b]])
    plus = 0.5 * (pos(e1) + pos(e2)) * eye2 + r * (E - mean * eye2)
    return e1, e2, plus


# |r| is clamped below 1 - R_CLAMP in the 3D eigenvalues: acos' is singular at
# r = +-1 (two equal principal strains). The clamp moves the equal pair apart by
# ~1e-4 of the deviatoric strain, which changes psi+- by ~1e-8 relative, and the
# missing d(phi) term cancels there (equal values carry equal weights).
R_CLAMP = 1e-8


def principal_values_3(A):
    """Principal values (e1 >= e2 >= e3) of a symmetric 3x3 UFL tensor by
    Cardano's trigonometric formula: q = tr A / 3, B = A - q I,
    p = sqrt(B:B / 6), r = det(B) / (2 p^3), phi = acos(r) / 3,
    e1 = q + 2 p cos(phi), e3 = q + 2 p cos(phi + 2 pi / 3), e2 = 3 q - e1 - e3.
    Finite with finite derivatives also at A = q I (p regularised by 1e-30,
    det B and its gradient vanish there) and at two equal values (clamp)."""
    q = ufl.tr(A) / 3.0
    B = A - q * ufl.Identity(3)
    p = ufl.sqrt(ufl.inner(B, B) / 6.0 + 1e-30)
    r = ufl.det(B) / (2.0 * p**3)
    hi = 1.0 - R_CLAMP
    r = ufl.conditional(ufl.gt(r, hi), hi, ufl.conditional(ufl.lt(r, -hi), -hi, r))
    phi = ufl.acos(r) / 3.0
    e1 = q + 2.0 * p * ufl.cos(phi)
    e3 = q + 2.0 * p * ufl.cos(phi + 2.0 * np.pi / 3.0)
    return e1, 3.0 * q - e1 - e3, e3


def spectral_positive_3(eps, tdim: int):
    """Positive part eps+ of a 3x3 plane-strain-structured strain (2D only)."""
    if tdim == 3:
        raise NotImplementedError("split 'spectral' is implemented for 2D (plane strain); use volumetric_deviatoric in 3D")
    _, _, p2 = _spectral_2x2(eps[0, 0], eps[1, 1], eps[0, 1])
    return ufl.as_tensor([[p2[0, 0], p2[0, 1], 0.0], [p2[1, 0], p2[1, 1], 0.0], [0.0, 0.0, pos(eps[2, 2])]])


class EnergySplit:
    """psi+(eps), psi-(eps), sigma+(eps), sigma-(eps) for one split and stiffness."""

    def __init__(self, kind: str, C: Stiffness, tdim: int):
        if kind == "spectral" and not C.isotropic:
            raise ValueError("split 'spectral' needs an isotropic electrolyte stiffness; use volumetric_deviatoric")
        self.kind, self.C, self.tdim = kind, C, tdim

    def parts(self, eps):
        """(psi+, psi-, sigma+, sigma-) as UFL; psi in MPa, sigma in MPa (3x3)."""
        C = self.C
        eye = ufl.Identity(3)
        if self.kind == "none":
            s = C(eps)
            return 0.5 * ufl.inner(s, eps), 0.0, s, 0.0 * eye
        if self.kind == "volumetric_deviatoric":
            tr = ufl.tr(eps)
            s = C(eps)
            psi_m = 0.5 * C.K * neg(tr) ** 2
            s_m = C.K * neg(tr) * eye
            return 0.5 * ufl.inner(s, eps) - psi_m, psi_m, s - s_m, s_m
        if self.kind == "spectral" and self.tdim == 3:
            ev = ufl.variable(eps)
            e1, e2, e3 = principal_values_3(0.5 * (ev + ev.T))
            tr = e1 + e2 + e3
            lam, mu = C.lam, C.muT
            psi_p = 0.5 * lam * pos(tr) ** 2 + mu * (pos(e1) ** 2 + pos(e2) ** 2 + pos(e3) ** 2)
            psi_m = 0.5 * lam * neg(tr) ** 2 + mu * (neg(e1) ** 2 + neg(e2) ** 2 + neg(e3) ** 2)
            return psi_p, psi_m, ufl.diff(psi_p, ev), ufl.diff(psi_m, ev)
        if self.kind == "spectral":
            # psi+- written with the principal strains (closed form in 2D plus
            # eps_zz) and differentiated by UFL: far smaller forms than the
            # eigen-projector expression (the Jacobian assembles ~50x faster)
            ev = ufl.variable(eps)
            a, b = ev[0, 0], ev[1, 1]
            c = 0.5 * (ev[0, 1] + ev[1, 0])
            mean = 0.5 * (a + b)
            rad = ufl.sqrt(0.25 * (a - b) ** 2 + c**2 + 1e-30)
            e1, e2, e3 = mean + rad, mean - rad, ev[2, 2]
            tr = a + b + e3
            lam, mu = C.lam, C.muT
            psi_p = 0.5 * lam * pos(tr) ** 2 + mu * (pos(e1) ** 2 + pos(e2) ** 2 + pos(e3) ** 2)
            psi_m = 0.5 * lam * neg(tr) ** 2 + mu * (neg(e1) ** 2 + neg(e2) ** 2 + neg(e3) ** 2)
            s_p = ufl.diff(psi_p, ev)
            s_m = ufl.diff(psi_m, ev)
            return psi_p, psi_m, s_p, s_m
        raise ValueError(f"unknown split {self.kind!r}")


def principal_stresses(sig: np.ndarray) -> np.ndarray:
    """Principal values (ascending) of an array of symmetric 3x3 tensors."""
    return np.linalg.eigvalsh(sig)


def plane_tractions(sig: np.ndarray, m: np.ndarray):
    """Normal and shear traction magnitudes on planes of unit normal m
    (arrays (n, 3, 3), (n, 3)): t_n = m.sig.m, t_s = |sig m - t_n m|."""
    t = np.einsum("nij,nj->ni", sig, m)
    tn = np.einsum("ni,ni->n", t, m)
    ts = np.sqrt(np.maximum(np.einsum("ni,ni->n", t, t) - tn**2, 0.0))
    return tn, ts


def von_mises(sig: np.ndarray) -> np.ndarray:
    """sqrt(3/2 s:s), s the deviator (arrays (n, 3, 3))."""
    tr = np.trace(sig, axis1=1, axis2=2)
    dev = sig - tr[:, None, None] / 3.0 * np.eye(3)[None]
    return np.sqrt(1.5 * np.einsum("nij,nij->n", dev, dev))
