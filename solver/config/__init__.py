"""The run configuration: schema (``schema``) and SI units (``units``).

``from solver.config import Config, ConfigError, load_config, schedule_value``
keeps working: the public names are re-exported here.
"""

from .schema import (
    SCHEMA_VERSION,
    Config,
    ConfigError,
    PathError,
    Schedule,
    apply_overrides,
    dump_yaml,
    interface_stiffness,
    load_config,
    max_anisotropy_strength,
    read_yaml,
    schedule_value,
    short,
    validate,
)
from .units import UnitError, to_si

__all__ = ["SCHEMA_VERSION", "Config", "ConfigError", "PathError", "short", "Schedule", "apply_overrides", "dump_yaml",
           "interface_stiffness", "load_config", "max_anisotropy_strength", "read_yaml", "schedule_value",
           "validate", "UnitError", "to_si"]
