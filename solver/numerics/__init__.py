"""Linear algebra shared by the field problems (``linalg``: PETSc options,
one Krylov -> direct fallback). Never imports physics."""
