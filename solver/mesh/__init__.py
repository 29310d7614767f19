"""The computational domain: mesh, tags, grains.

    tags         the facet-tag table (pure Python; ``meshes`` reads it too)
    domain       :class:`Domain` and the structured rectangle (no gmsh)
    polycrystal  gmsh meshes (Voronoi, crystals, files) and ``solver mesh``

``build_domain`` picks one from the config. This package imports no DOLFINx
until a domain is built, so the checks of ``solver check`` stay light.
"""

from .tags import COUNTER_ELECTRODE, FACET_NAMES, FACET_TAGS, FLAW, GRAIN_BOUNDARY, OUTER, PLATING_ELECTRODE


def build_domain(cfg, comm=None):
    """The domain the config asks for (a rectangle, or a gmsh kind via polycrystal)."""
    if comm is None:
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
    if cfg.mesh.kind == "rectangle":
        from .domain import rectangle_domain

        return rectangle_domain(cfg, comm)
    from .polycrystal import load_domain  # gmsh-generated meshes (Voronoi, crystals, files)

    return load_domain(cfg, comm)


__all__ = ["build_domain", "FACET_TAGS", "FACET_NAMES", "PLATING_ELECTRODE", "COUNTER_ELECTRODE", "OUTER",
           "GRAIN_BOUNDARY", "FLAW"]
