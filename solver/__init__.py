"""nacrack: electro-chemo-mechanics of Na dendrites in ceramic electrolytes.

Five fields on a polycrystal (FEniCSx/DOLFINx): displacement u, electric
potential phi, Na+ concentration c, Na-metal phase field xi and fracture
phase field d. See README.md and docs/model.md.
"""

__version__ = "0.1.0"
