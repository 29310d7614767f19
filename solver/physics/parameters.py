"""Derived physical quantities of a config, in SI: no DOLFINx here.

The physics modules build their forms from these; ``solver check``
(``preflight``) reports them and checks them against each other.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..scales import FARADAY, thermal_voltage

if TYPE_CHECKING:
    from ..config import Config


def interface_parameters(cfg: Config) -> dict:
    """W = 12 gamma/delta [J/m^3], kappa = 3 gamma delta/2 [J/m],
    L_eta = i0 / (1.5 n F c_s delta) [1/s], c_s = 1/Omega [mol/m^3]."""
    ec = cfg.electrochemistry
    gamma, delta = ec.interface_energy, ec.interface_width
    c_s = 1.0 / cfg.materials.sodium.molar_volume
    return {
        "barrier_height_W_J_m3": 12.0 * gamma / delta,
        "gradient_coefficient_kappa_J_m": 1.5 * gamma * delta,
        "kinetic_coefficient_L_eta_1_s": ec.exchange_current_density
        / (1.5 * ec.charge_number * FARADAY * c_s * delta),
        "metal_site_density_c_s_mol_m3": c_s,
        "thermal_voltage_V": thermal_voltage(cfg.materials.temperature, ec.charge_number),
    }


def bv_bracket(eta: float, alpha: float, f: float, c: float = 1.0) -> float:
    """B = exp((1-alpha) f eta) - c exp(-alpha f eta) (eta in V, f = nF/RT)."""
    return math.exp((1.0 - alpha) * f * eta) - c * math.exp(-alpha * f * eta)
