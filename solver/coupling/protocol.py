"""The field-problem interface: what the coupling schemes and the time loop
may ask of a field problem (mechanics, electrochemistry, fracture,
conduction) and of a whole model (the coupled solver, conduction alone).

Time convention: ``solve(t, dt)`` computes the state at time ``t`` [s]
reached by a step of ``dt`` [s] from the committed state at ``t - dt``.
The new state stays pending until ``commit()``; ``save_state()`` /
``restore_state()`` bracket a step that may be rejected (cut-back).
``solve`` returns statistics: iteration counts under the scalars.csv
column names (``newton_iterations``, ``krylov_iterations``, ...); a model
may add ``problems`` (reasons to reject the step) and ``converged``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class FieldProblem(Protocol):
    """One field (or a set of fields solved together) on a Domain."""

    def solve(self, t: float, dt: float) -> dict[str, Any]:
        """Compute the (pending) state at time t [s] after a step dt [s]; statistics."""

    def commit(self) -> None:
        """Accept the pending state: it becomes the state the next step starts from."""

    def save_state(self) -> None:
        """Remember the current state (before a step that may be rejected)."""

    def restore_state(self) -> None:
        """Return to the state of the last ``save_state``."""

    def checkpoint_functions(self) -> dict:
        """Functions that hold the committed state, by name (written with adios4dolfinx)."""

    def checkpoint_state(self) -> dict:
        """The committed scalars (JSON), the complement of ``checkpoint_functions``."""

    def load_checkpoint_state(self, state: dict) -> None:
        """After the checkpoint functions were read: restore the rest of the committed state."""

    def scalars(self, t: float) -> dict[str, float]:
        """Per-step quantities for scalars.csv, SI, units in the column names."""

    def output_functions(self) -> list:
        """Functions for fields.xdmf (SI values; coordinates in um)."""

    def dofs(self) -> int:
        """Number of unknowns (global)."""


@runtime_checkable
class Model(FieldProblem, Protocol):
    """A whole model, what the time loop advances: a FieldProblem on a domain,
    with the DOFs per field and the short-circuit stop.

    ``solve_phase``: the wall-clock phase (RunContext.PHASES) the loop
    charges a ``solve`` to, or None when the model splits its own time."""

    domain: Any
    solve_phase: str | None

    def dofs_by_field(self) -> dict[str, int]:
        """Unknowns per field problem, for summary.json."""

    def short_circuit(self) -> tuple[bool, float | None]:
        """(True, location [m]) once the deposit bridges the electrodes."""
