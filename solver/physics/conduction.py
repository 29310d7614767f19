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

from .. import scales
from ..config import schedule_value
from ..mesh.domain import COUNTER_ELECTRODE, PLATING_ELECTRODE, Domain
from ..numerics.linalg import LinearSolver


class ConductionProblem:
    """The potential phi [V] between two electrodes held at 0 and V.

    A whole model for the time loop (``coupling.protocol.Model``): ``solve(t,
    dt)`` holds the counter electrode at ``voltage`` (a constant or a
    schedule, V) at time t; ``commit`` adds the charge I dt."""

    solve_phase = "electrochemistry"

    def __init__(self, domain: Domain, sigma_par: float, sigma_perp: float,
                 petsc_options: dict | None = None, degree: int = 1, voltage=0.0):
        self.domain = domain
        self.voltage_schedule = voltage
        self.charge = 0.0  # C/m, committed
        self._last = (0.0, 0.0, 0.0)  # (voltage [V], current [A/m], dt [s]) of the last solve
        self._saved = None
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
        # SI factors (um^(tdim-1) of electrode, grad in 1/um): 2D current per depth [A/m] and
        # electrode width [m]; 3D current [A] and electrode area [m^2]
        self._tdim = tdim
        self._electrode_m = msh.comm.allreduce(fem.assemble_scalar(fem.form(
            fem.Constant(msh, 1.0) * ds(PLATING_ELECTRODE))), op=MPI.SUM) * scales.LENGTH ** (tdim - 1)

    @classmethod
    def from_config(cls, domain: Domain, cfg) -> "ConductionProblem":
        el = cfg.materials.electrolyte
        return cls(domain, el.conductivity_parallel, el.conductivity_perpendicular,
                   cfg.solver.petsc.get("potential"), voltage=cfg.loading.electrical.voltage)

    def solve_voltage(self, voltage: float) -> int:
        """Solve for phi with the counter electrode at ``voltage`` [V]; Krylov its."""
        self.voltage.value = voltage
        return self.solver.solve(self.phi)

    # -- the FieldProblem interface ------------------------------------------
    def solve(self, t: float, dt: float = 0.0) -> dict:
        """phi at time t [s] (quasi-static: dt only weighs the charge)."""
        voltage = schedule_value(self.voltage_schedule, t)
        its = self.solve_voltage(voltage)
        self._last = (voltage, self.current_per_depth(), dt)
        return {"stagger_iterations": 1, "newton_iterations": 0, "krylov_iterations": its}

    def commit(self) -> None:
        _, current, dt = self._last
        self.charge += current * dt

    def save_state(self) -> None:
        self._saved = (self.phi.x.array.copy(), self.charge, self._last)

    def restore_state(self) -> None:
        a, self.charge, self._last = self._saved
        self.phi.x.array[:] = a
        self.phi.x.scatter_forward()

    def checkpoint_functions(self) -> dict:
        return {"phi": self.phi}

    def checkpoint_state(self) -> dict:
        return {"charge_C_m": self.charge}

    def load_checkpoint_state(self, state: dict) -> None:
        self.phi.x.scatter_forward()
        self.charge = state.get("charge_C_m", 0.0)

    def scalars(self, t: float) -> dict:
        voltage, current, _ = self._last
        electrode = self._electrode_m if self._electrode_m > 0 else self.domain.width * scales.LENGTH
        return {"current_density_A_m2": current / electrode, "cell_voltage_V": voltage, "charge_C_m": self.charge}

    def output_functions(self) -> list:
        return [self.phi, self.domain.grain_id, self.domain.theta]

    def dofs_by_field(self) -> dict:
        return {"potential": self.dofs()}

    def short_circuit(self):
        return False, None

    def current_per_depth(self) -> float:
        """Ionic current through the plating electrode per unit depth [A/m]
        (3D: the current [A]).

        Positive when Na+ flows towards the plating electrode (phi higher at
        the counter electrode), i.e. when Na plates there."""
        local = fem.assemble_scalar(self._current)
        return self.domain.comm.allreduce(local, op=MPI.SUM) * scales.LENGTH ** (self._tdim - 2)  # 3D: A

    def dofs(self) -> int:
        return self.domain.num_dofs(self.V)


def series_current(sigmas_y: list[float], thicknesses: list[float], voltage: float, width: float) -> float:
    """Analytic current per depth [A/m] through layers in series along y:
    I = V W / sum(t_k / sigma_k) (lengths in consistent units)."""
    return voltage * width / float(np.sum(np.asarray(thicknesses) / np.asarray(sigmas_y)))
