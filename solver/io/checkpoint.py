"""Checkpoints: when to write one, whether a config may restart from one.

A checkpoint directory holds ``step_N.<token>.bp`` directories (adios4dolfinx,
on the input mesh ordering, so a restart may use another number of ranks),
each with a manifest of sizes and sha256 (io/checkpoint_store.py), and
``state.json`` (written atomically last), which names the current and the
previous good file and holds the step, time, dt, the physics of the config
and each field problem's own scalars.
"""

from __future__ import annotations

import json
from pathlib import Path

from mpi4py import MPI

from ..config import Config, ConfigError

CHECKPOINT_DIR = "checkpoint"
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


def write_checkpoint(model, directory: Path, cfg: Config, step: int, t: float, dt: float, extra: dict) -> None:
    """The committed state of ``model`` (a coupling.protocol.Model): its
    checkpoint functions (adios4dolfinx, input-mesh ordering) in a new
    directory, made current by :class:`CheckpointStore` (manifest of sizes and
    sha256, atomic state.json, the previous good checkpoint kept)."""
    import adios4dolfinx

    from .checkpoint_store import CheckpointStore

    comm = model.domain.comm
    store = CheckpointStore(directory, comm)
    funcs = model.checkpoint_functions()
    estimate = 16 * (sum(f.function_space.dofmap.index_map.size_global * f.function_space.dofmap.index_map_bs
                         for f in funcs.values()) + model.domain.mesh.geometry.index_map().size_global * 3)
    path = store.begin(step, estimate)  # a full disk stops every rank here, before any collective write
    adios4dolfinx.write_mesh_input_order(path, model.domain.mesh)
    for key, f in funcs.items():
        adios4dolfinx.write_function_on_input_mesh(path, f, time=0.0, name=key)
    store.commit(path, {"step": step, "time_s": t, "dt_s": dt, **model.checkpoint_state(),
                        "physics_hash": cfg.physics_hash(), "physics": cfg.physics_dict(), "ranks": comm.size,
                        **extra})


def read_checkpoint(model, directory: Path, cfg: Config) -> dict:
    """Load the checkpoint in ``directory`` into ``model``; returns state.json.
    Raises ConfigError when ``cfg`` may not continue from it (restart_refusal)."""
    import adios4dolfinx

    directory = Path(directory)
    problems = restart_refusal(cfg, directory)
    if problems:
        raise ConfigError(problems)
    from .checkpoint_store import CheckpointDamaged, CheckpointStore
    from .log import get_logger

    try:  # sizes and sha256 verified on rank 0, verdict broadcast, before any collective read
        state = CheckpointStore(directory, model.domain.comm).select_for_restart(get_logger())
    except CheckpointDamaged as exc:
        raise ConfigError([str(exc)]) from None
    path = directory / state["file"]
    optional = set(getattr(model, "optional_checkpoint_keys", ()))
    for key, f in model.checkpoint_functions().items():
        try:
            adios4dolfinx.read_function(path, f, time=0.0, name=key)
        except Exception:
            if key not in optional:  # the same verdict on every rank: the file's variables are the same
                raise
            f.x.array[:] = 0.0  # a checkpoint of an older version, without this Function
        f.x.scatter_forward()
    model.load_checkpoint_state(state)
    return state
