"""How the field problems advance together within one time step.

    protocol   FieldProblem: the interface every field problem implements
    staggered  the staggered scheme (M) -> (E) -> (F) and the pressure relaxation
"""
