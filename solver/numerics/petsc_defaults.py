"""The project's default PETSc options of every sub-solver, as plain dicts
(no PETSc, no DOLFINx import: ``solver check`` compares a config's
solver.petsc overrides against them without loading the FE stack). The
field modules and the coupling take their defaults from here; a config's
``solver.petsc.<name>`` overrides them key by key."""

from __future__ import annotations

# symmetric positive definite problems (potential, fracture): CG + GAMG
SPD_DEFAULTS = {
    "ksp_type": "cg",
    "pc_type": "gamg",
    "ksp_rtol": 1.0e-10,
    "ksp_atol": 1.0e-30,
    "ksp_max_it": 1000,
}

# a parallel direct solve (the fallback of every Krylov solver)
DIRECT_OPTIONS = {"ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"}

# mechanics (prefix mechanics_): CG + GAMG (rigid-body near-nullspace) with SOR
# smoothing: on a soft, nearly incompressible Na inclusion (K/G = 63) it needs
# ~40% fewer iterations than the default Chebyshev/Jacobi smoother, and the
# same on homogeneous problems (benchmarks/mechanics_scaling.py)
MECHANICS_PETSC = {**SPD_DEFAULTS, "ksp_max_it": 300, "mg_levels_ksp_type": "richardson", "mg_levels_pc_type": "sor"}

# electrochemistry (prefix electrochemistry_): the (xi, c~, phi) Jacobian,
# GMRES with one hypre AMG per field (benchmarks/electrochemistry_scaling.py)
ELECTROCHEMISTRY_PETSC = {
    "ksp_type": "gmres",
    "ksp_gmres_restart": 100,
    "ksp_rtol": 1.0e-9,
    "ksp_atol": 1.0e-30,
    "ksp_max_it": 500,
    "pc_type": "fieldsplit",
    "pc_fieldsplit_type": "multiplicative",
    "pc_fieldsplit_block_size": 3,
    "pc_fieldsplit_0_fields": 0,
    "pc_fieldsplit_1_fields": 1,
    "pc_fieldsplit_2_fields": 2,
    "fieldsplit_0_ksp_type": "preonly",
    "fieldsplit_0_pc_type": "hypre",
    "fieldsplit_1_ksp_type": "preonly",
    "fieldsplit_1_pc_type": "hypre",
    "fieldsplit_2_ksp_type": "preonly",
    "fieldsplit_2_pc_type": "hypre",
}

# the monolithic coupled Jacobian (prefix coupled_): GMRES, right
# preconditioned (it minimises the true, block-equilibrated residual), a
# multiplicative fieldsplit of the mechanics (as MECHANICS_PETSC) and the
# electrochemistry (as ELECTROCHEMISTRY_PETSC); ksp_rtol is set per Newton
# iteration (the forcing term)
COUPLED_PETSC = {
    "ksp_type": "gmres",
    "ksp_pc_side": "right",
    "ksp_norm_type": "unpreconditioned",
    "ksp_gmres_restart": 100,
    "ksp_atol": 1.0e-30,
    "ksp_max_it": 500,
    "pc_type": "fieldsplit",
    "pc_fieldsplit_type": "multiplicative",
    **{f"fieldsplit_mechanics_{k}": v for k, v in MECHANICS_PETSC.items() if k.startswith(("pc_", "mg_"))},
    "fieldsplit_mechanics_ksp_type": "preonly",
    **{f"fieldsplit_electrochemistry_{k}": v for k, v in ELECTROCHEMISTRY_PETSC.items()
       if k.startswith(("pc_", "fieldsplit_"))},
    "fieldsplit_electrochemistry_ksp_type": "preonly",
}

# by sub-solver name (the keys of solver.petsc)
DEFAULTS = {"potential": SPD_DEFAULTS, "fracture": SPD_DEFAULTS, "mechanics": MECHANICS_PETSC,
            "electrochemistry": ELECTROCHEMISTRY_PETSC, "coupled": COUPLED_PETSC}
