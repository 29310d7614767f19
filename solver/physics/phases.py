"""Definitions shared by the fields: the phase-field interpolation h(xi) and
the space of the damage field d.

h(xi) = xi^3 (6 xi^2 - 15 xi + 10): 0 in the electrolyte (xi = 0), 1 in Na
(xi = 1), h'(0) = h'(1) = 0. It mixes the stiffness and sets the eigenstrain
(mechanics), the conductivity and the Butler-Volmer driving of the Allen-Cahn
equation (electrochemistry).

d is P1 for the phase-field fracture models and DG0 (one value per cell,
0 or 1) for ``fracture.model: damaged_domain``.
"""

from __future__ import annotations


def h_interp(xi):
    """h(xi) = xi^3 (6 xi^2 - 15 xi + 10): 0 in the electrolyte, 1 in Na."""
    return xi**3 * (6.0 * xi**2 - 15.0 * xi + 10.0)


def h_prime(xi):
    """h'(xi) = 30 xi^2 (1 - xi)^2."""
    return 30.0 * xi**2 * (1.0 - xi) ** 2


def damage_element(cfg) -> tuple:
    """The element of d: ("DG", 0) for damaged_domain, ("Lagrange", 1) otherwise."""
    return ("DG", 0) if cfg.fracture.model == "damaged_domain" else ("Lagrange", 1)


def make_damage_function(domain, cfg):
    """The damage field d ("damage") on the domain, in the space of ``damage_element``."""
    from dolfinx import fem

    return fem.Function(fem.functionspace(domain.mesh, damage_element(cfg)), name="damage")
