"""Physical quantities in the config: SI numbers or unit strings.

A YAML value such as ``300 MPa`` or ``"1 mA/cm^2"`` is parsed with pint and
converted to the SI unit of the expected dimension; a bare number is taken
as already being in SI. Nothing here imports DOLFINx.
"""

from __future__ import annotations

import functools
import math

# name -> (SI unit string, example for error messages)
DIMENSIONS: dict[str, tuple[str, str]] = {
    "length": ("m", "'20 um' or 2e-5"),
    "time": ("s", "'10 min' or 600"),
    "temperature": ("K", "'298 K' or 298"),
    "pressure": ("Pa", "'300 MPa' or 3e8"),
    "energy_per_area": ("J/m^2", "'20 J/m^2' or 20"),
    "toughness": ("Pa*m^0.5", "'2 MPa*m^0.5' or 2e6"),
    "current_density": ("A/m^2", "'1 mA/cm^2' or 10"),
    "voltage": ("V", "'100 mV' or 0.1"),
    "conductivity": ("S/m", "'1 S/m' or 1"),
    "diffusivity": ("m^2/s", "'3e-11 m^2/s' or 3e-11"),
    "concentration": ("mol/m^3", "'9000 mol/m^3' or 9e3"),
    "molar_volume": ("m^3/mol", "'23.7 cm^3/mol' or 2.37e-5"),
    "mobility": ("m^3/(J*s)", "'2.5e-6 m^3/(J*s)' or 2.5e-6"),
    "angle": ("rad", "'30 deg' or 0.5236"),
    "dimensionless": ("", "0.2"),
}


@functools.lru_cache(maxsize=1)
def _registry():
    import pint

    return pint.UnitRegistry()


class UnitError(ValueError):
    """A value that is not a quantity of the expected dimension."""


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def to_si(value, dimension: str) -> float:
    """Return ``value`` as a float in the SI unit of ``dimension``.

    Numbers pass through unchanged (they are SI). Strings are parsed by pint
    ("300 MPa", "1 mA/cm^2", "30 deg") and converted.
    """
    si_unit, example = DIMENSIONS[dimension]
    if isinstance(value, bool):
        raise UnitError(f"expected a {dimension.replace('_', ' ')}, e.g. {example}; got a boolean")
    if isinstance(value, (int, float)):
        x = float(value)
    elif isinstance(value, str) and _is_number(value):
        x = float(value)  # "1e-4": YAML 1.1 reads it as a string; it is an SI number
    elif isinstance(value, str):
        ureg = _registry()
        try:
            q = ureg.Quantity(value.strip())
        except Exception as exc:  # pint raises several types
            raise UnitError(
                f"expected a {dimension.replace('_', ' ')}, e.g. {example}; "
                f"could not parse {value!r} ({type(exc).__name__})"
            ) from None
        if isinstance(q, (int, float)):
            x = float(q)
        else:
            try:
                x = float(q.to(si_unit or "dimensionless").magnitude)
            except Exception:
                raise UnitError(
                    f"expected a {dimension.replace('_', ' ')} (SI unit {si_unit or '1'}), "
                    f"e.g. {example}; got units of '{q.units:~}'"
                ) from None
    else:
        raise UnitError(
            f"expected a {dimension.replace('_', ' ')}, e.g. {example}; got {type(value).__name__}"
        )
    if not math.isfinite(x):
        raise UnitError(f"expected a finite {dimension.replace('_', ' ')}; got {value!r}")
    return x
