"""Internal scales (docs/model.md#scales-and-units).

The solver works in scaled units so that SI-sized numbers (1e-6 m,
1e-11 m^2/s) never meet hard-coded absolute tolerances:

    length     l0 = 1 um        (mesh coordinates are micrometres)
    time       t0 = 1 s
    stress     s0 = 1 MPa       (so energy/area s0*l0 = 1 J/m^2)
    potential  RT/F             (thermal voltage at the run temperature)
    Na+        c / c0

Config values and every written output are SI (coordinates in um, stated in
the file metadata). Convert only at these boundaries.
"""

from __future__ import annotations

FARADAY = 96485.33212  # C/mol
GAS_CONSTANT = 8.314462618  # J/(mol K)

LENGTH = 1.0e-6  # m per internal length unit
TIME = 1.0  # s per internal time unit
STRESS = 1.0e6  # Pa per internal stress unit
ENERGY_PER_AREA = STRESS * LENGTH  # J/m^2 per internal unit (= 1)


def thermal_voltage(temperature: float, n: int = 1) -> float:
    """RT/(nF) [V]."""
    return GAS_CONSTANT * temperature / (n * FARADAY)


def length(x_m: float) -> float:
    """m -> internal length (um)."""
    return x_m / LENGTH


def stress(p_pa: float) -> float:
    """Pa -> internal stress (MPa)."""
    return p_pa / STRESS
