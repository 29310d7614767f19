"""The field equations, each a builder of its weak form on a Domain.

    electrochemistry  (xi, c~, phi): phase field, Na+ transport, potential
    mechanics         u: quasi-static equilibrium with the deposit eigenstrain
    elasticity        constitutive laws: stiffness, energy splits
    fracture          d: phase-field / stress-criterion fracture
    conduction        phi alone (fixed conductivity)
    initial_na        initial Na-metal deposits
    phases            h(xi), the damage field's space: shared by the fields
    parameters        derived quantities of a config (no DOLFINx)

Imports point down: physics -> mesh, config, numerics; never to coupling,
time, io or the checks of ``preflight``.
"""
