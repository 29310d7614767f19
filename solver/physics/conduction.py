"""Ionic conduction with fixed conductivity: div(sigma grad phi) = 0.

sigma = sigma_par (I - m m) + sigma_perp m m per grain (m the c-axis), so Na+
conducts along the conduction planes. phi = 0 on the plating electrode and
phi = V on the counter electrode; the other boundaries are insulated.
Units: phi in V, sigma in S/m, mesh in um; the current per depth
I = int sigma grad(phi) . n ds is then in A/m (the um factors cancel).
"""

from __future__ import annotations

import numpy as np
import ufl
from mpi4py import MPI

from dolfinx import fem

from ..mesh.domain import COUNTER_ELECTRODE, PLATING_ELECTRODE, Domain
from ..numerics.linalg import LinearSolver


class ConductionProblem:
    """The potential phi [V] between two electrodes held at 0 and V."""

    def __init__(self, domain: Domain, sigma_par: float, sigma_perp: float,
                 petsc_options: dict | None = None, degree: int = 1):
        self.domain = domain
        msh = domain.mesh
        self.V = fem.functionspace(msh, ("Lagrange", degree))
        self.phi = fem.Function(self.V, name="potential")
        self.voltage = fem.Constant(msh, 0.0)
        self.sigma = domain.anisotropic(sigma_par, sigma_perp)
        phi, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        dx, ds, _ = domain.measures()
        self.ds = ds
        a = ufl.inner(self.sigma * ufl.grad(phi), ufl.grad(v)) * dx
        L = fem.Constant(msh, 0.0) * v * dx
        tdim = msh.topology.dim
        ft = domain.facet_tags
        dofs0 = fem.locate_dofs_topological(self.V, tdim - 1, ft.find(PLATING_ELECTRODE))
        dofs1 = fem.locate_dofs_topological(self.V, tdim - 1, ft.find(COUNTER_ELECTRODE))
        bcs = [fem.dirichletbc(0.0, dofs0, self.V), fem.dirichletbc(self.voltage, dofs1, self.V)]
        self.solver = LinearSolver(a, L, bcs, "potential_", msh.comm, overrides=petsc_options,
                                   constant_matrix=True)
        n = ufl.FacetNormal(msh)
        # current leaving through the plating electrode = -sigma grad phi . n
        self._current = fem.form(-ufl.dot(self.sigma * ufl.grad(self.phi), n) * ds(PLATING_ELECTRODE))

    def solve(self, voltage: float) -> int:
        """Solve for phi with the counter electrode at ``voltage`` [V]; Krylov its."""
        self.voltage.value = voltage
        return self.solver.solve(self.phi)

    def current_per_depth(self) -> float:
        """Ionic current through the plating electrode per unit depth [A/m].

        Positive when Na+ flows towards the plating electrode (phi higher at
        the counter electrode), i.e. when Na plates there."""
        local = fem.assemble_scalar(self._current)
        return self.domain.comm.allreduce(local, op=MPI.SUM)

    def dofs(self) -> int:
        return self.domain.num_dofs(self.V)


def series_current(sigmas_y: list[float], thicknesses: list[float], voltage: float, width: float) -> float:
    """Analytic current per depth [A/m] through layers in series along y:
    I = V W / sum(t_k / sigma_k) (lengths in consistent units)."""
    return voltage * width / float(np.sum(np.asarray(thicknesses) / np.asarray(sigmas_y)))
