"""The facet-tag table, by name: the one definition is ``meshes.build.FACET_TAGS``
(pure Python, no gmsh at import), which the gmsh generator writes into every
mesh and mesh.json; the structured rectangles and every physics module read
the same numbers through this module:

    1 plating_electrode (y = 0)    2 counter_electrode (y = H)
    3 outer (other outer boundary) 4 grain_boundary    5 flaw (flaw surfaces)
"""

from meshes.build import FACET_NAMES, FACET_TAGS

PLATING_ELECTRODE = FACET_TAGS["plating_electrode"]
COUNTER_ELECTRODE = FACET_TAGS["counter_electrode"]
OUTER = FACET_TAGS["outer"]
GRAIN_BOUNDARY = FACET_TAGS["grain_boundary"]
FLAW = FACET_TAGS["flaw"]

__all__ = ["FACET_TAGS", "FACET_NAMES", "PLATING_ELECTRODE", "COUNTER_ELECTRODE", "OUTER", "GRAIN_BOUNDARY", "FLAW"]
