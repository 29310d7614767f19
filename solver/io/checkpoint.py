"""Checkpoints: when to write one, whether a config may restart from one.

A checkpoint directory holds ``step_NNNNNNN.bp`` (adios4dolfinx, on the
input mesh ordering, so a restart may use another number of ranks) and
``state.json`` (written atomically last), which names the current file and
holds the step, time, dt, the physics of the config and each field
problem's own scalars.
"""

from __future__ import annotations

import json
from pathlib import Path

from mpi4py import MPI

from ..config import Config

CHECKPOINT_STATE = "state.json"


def restart_refusal(cfg: Config, directory: Path) -> list[str]:
    """Why ``cfg`` may not continue from the checkpoint in ``directory``
    (no checkpoint; not a nacrack checkpoint; the physics changed, named key
    by key); empty if it may. Reads two small files: called before any mesh
    or solver is built and before the run directory is touched."""
    directory = Path(directory)
    state_file = directory / CHECKPOINT_STATE
    if not state_file.exists():
        return [f"--restart: no checkpoint in {directory} (expected {CHECKPOINT_STATE})"]
    try:
        state = json.loads(state_file.read_text())
    except ValueError:
        return [f"--restart: {state_file} is not a nacrack checkpoint (not JSON)"]
    if "ranks" not in state or "file" not in state:
        return [f"--restart: {state_file} is not a nacrack checkpoint"]
    if state.get("physics_hash") == cfg.physics_hash():
        return []
    old = _old_physics(directory, state)
    changes = (cfg.physics_changes(old) if old is not None
               else [f"physics hash {state.get('physics_hash')} -> {cfg.physics_hash()}"])
    if not changes:
        return []
    shown = "; ".join(changes[:8]) + (f"; ... ({len(changes)} in all)" if len(changes) > 8 else "")
    return [f"--restart: the physics in the config changed since the checkpoint ({shown}); "
            "only time, solver and output settings may change on restart"]


def _old_physics(directory: Path, state: dict) -> dict | None:
    """The physics a checkpoint was written with: stored in the state, or
    (checkpoints of older versions) the run's config.resolved.yaml."""
    if isinstance(state.get("physics"), dict):
        return state["physics"]
    resolved = Path(directory).parent / "config.resolved.yaml"
    if resolved.exists():
        import yaml

        d = yaml.safe_load(resolved.read_text()) or {}
        return {k: v for k, v in d.items() if k not in Config.NON_PHYSICS}
    return None


def checkpoint_due(step: int, wall_since_last_s: float, output, comm: MPI.Comm) -> bool:
    """Every ``output.checkpoint_every`` steps, or once ``output.checkpoint_wall_time``
    seconds of wall-clock time have passed since the last checkpoint. Collective:
    rank 0's clock decides, so that every rank writes (adios4dolfinx is collective)."""
    if step % output.checkpoint_every == 0:
        return True
    if output.checkpoint_wall_time <= 0.0:
        return False
    return bool(comm.bcast(wall_since_last_s >= output.checkpoint_wall_time, root=0))
