"""gmsh scripts that generate the electrolyte microstructures.

Importable without DOLFINx (gmsh and numpy only); ``python3 -m solver mesh``
calls them. Coordinates are written in micrometres.
"""
