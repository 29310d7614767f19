"""Writing options into the PETSc options database (petsc4py only, no DOLFINx:
``solver check`` uses it through solver/petsc_options.py)."""

from __future__ import annotations


def write_options(opts, prefix: str, options: dict) -> None:
    """Set ``options`` under ``prefix`` in ``opts`` (a PETSc.Options): a key's
    leading '-' is dropped; True or None set a flag, False writes 'false'."""
    for key, value in options.items():
        key = str(key).lstrip("-")
        if value is None or value is True:
            opts[f"{prefix}{key}"] = ""
        elif value is False:
            opts[f"{prefix}{key}"] = "false"
        else:
            opts[f"{prefix}{key}"] = value
