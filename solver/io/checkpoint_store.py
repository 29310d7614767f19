"""Checkpoints that survive a kill, a full disk and a damaged file.

Layout of ``checkpoint/`` (rank 0 owns the small files)::

    state.json                      the pointer: names the current checkpoint
                                    and keeps the previous good one
    step_0000040.<token>.bp/        adios4dolfinx data of a checkpoint, never
                                    written twice (the token is new each time)
    step_0000040.<token>.manifest.json  size and sha256 of every file in it

Writing (``begin`` -> the caller writes the data -> ``commit``):

1. ``begin``: rank 0 checks the free space against an estimate (the last
   checkpoint's size, or the caller's estimate) and names a new directory;
   the verdict is broadcast, so that a full disk stops every rank before any
   collective write starts (an ADIOS2 write into a full disk aborts).
2. the caller writes the data into that directory (collective);
3. ``commit``: rank 0 fsyncs the files, writes the manifest, then replaces
   state.json atomically (temporary file, fsync, rename, fsync of the
   directory) with the new pointer and the old one as ``previous``; only
   then are checkpoints older than the previous one removed. Any failure
   removes the new directory and leaves state.json (and both good
   checkpoints) as they were; every rank then raises ``CheckpointIOError``.

Reading (``select_for_restart``): rank 0 verifies the current checkpoint
against its manifest (sizes, sha256); if it is damaged, it says so in the
log and takes the previous one; the verdict (or the error) is broadcast
BEFORE any collective read, so a damaged file ends with the same error on
every rank instead of a hang inside ADIOS2.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

STATE = "state.json"
MANIFEST_SUFFIX = ".manifest.json"
SPACE_MARGIN = 1.5  # free space asked for: this x the estimated checkpoint size, plus MIN_FREE_BYTES
MIN_FREE_BYTES = 4 << 20


class CheckpointIOError(OSError):
    """A checkpoint could not be written (full disk, I/O error): the run stops,
    status 'failed', the previous checkpoint is intact."""


class CheckpointDamaged(Exception):
    """No checkpoint in the directory passes its manifest (one line)."""


# --------------------------------------------------------------------------
# small file helpers (rank 0)
# --------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: dict) -> None:
    """Temporary file + fsync + rename + fsync of the directory: after a crash
    ``path`` is either the old or the new file, never a mixture."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as fh:
            fh.write(json.dumps(data, indent=1) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _files(root: Path) -> list[Path]:
    return sorted(p for p in Path(root).rglob("*") if p.is_file())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_manifest(data_dir: Path) -> dict:
    """{'files': {relative path: {'bytes': n, 'sha256': hex}}, 'bytes': total}; fsyncs each file."""
    data_dir = Path(data_dir)
    files = {}
    for p in _files(data_dir):
        with open(p, "rb") as fh:
            os.fsync(fh.fileno())
        files[str(p.relative_to(data_dir))] = {"bytes": p.stat().st_size, "sha256": _sha256(p)}
    for d in [data_dir, *(p for p in data_dir.rglob("*") if p.is_dir())]:
        _fsync_dir(d)
    return {"schema": "nacrack.checkpoint_manifest", "files": files,
            "bytes": sum(f["bytes"] for f in files.values())}


def verify(directory: Path, entry: dict) -> str | None:
    """Why the checkpoint ``entry`` (a state dict naming 'file' and 'manifest')
    is damaged, or None if every file matches its manifest."""
    directory = Path(directory)
    name = entry.get("file")
    if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
        return f"{STATE} names no checkpoint file"
    data = directory / name
    if not data.is_dir():
        return f"{name} is missing"
    man_name = entry.get("manifest")
    if not man_name:
        return f"{name} has no manifest (written by an older version or never completed)"
    try:
        manifest = json.loads((directory / man_name).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its manifest {man_name} is unreadable ({type(exc).__name__})"
    if not files:
        return f"{name}: the manifest lists no files"
    for rel, want in files.items():
        p = data / rel
        if not p.is_file():
            return f"{name}/{rel} is missing"
        size = p.stat().st_size
        if size != want["bytes"]:
            return f"{name}/{rel} has {size} bytes, the manifest says {want['bytes']} (truncated or overwritten)"
        if _sha256(p) != want["sha256"]:
            return f"{name}/{rel}: sha256 differs from the manifest (damaged)"
    return None


# --------------------------------------------------------------------------
# the store (collective methods are marked)
# --------------------------------------------------------------------------
class CheckpointStore:
    def __init__(self, directory: Path, comm):
        self.directory, self.comm = Path(directory), comm

    def _state(self) -> dict | None:
        try:
            state = json.loads((self.directory / STATE).read_text())
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def _agree(self, error: str | None, exc_type=CheckpointIOError):
        """Collective: raise ``exc_type`` on every rank if rank 0 reported an error."""
        error = self.comm.bcast(error, root=0)
        if error:
            if exc_type is CheckpointIOError:
                raise CheckpointIOError(errno.EIO, error)
            raise exc_type(error)

    # -- writing ---------------------------------------------------------------
    def begin(self, step: int, estimate_bytes: int = 0) -> Path:
        """Collective. A new, empty data directory for the checkpoint of
        ``step``; raises CheckpointIOError on every rank if the disk cannot
        hold it (then nothing was written)."""
        error, name = None, None
        if self.comm.rank == 0:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                state = self._state() or {}
                last = state.get("bytes") or 0
                need = int(SPACE_MARGIN * max(last, estimate_bytes)) + MIN_FREE_BYTES
                st = os.statvfs(self.directory)
                free = st.f_bavail * st.f_frsize
                if free < need:
                    error = (f"no space left for a checkpoint in {self.directory}: {free / 1e6:.1f} MB free, "
                             f"about {need / 1e6:.1f} MB needed")
                else:
                    name = f"step_{step:07d}.{os.urandom(4).hex()}.bp"
            except OSError as exc:
                error = f"checkpoint directory {self.directory}: {exc.strerror or exc}"
        self._agree(error)
        name = self.comm.bcast(name, root=0)
        return self.directory / name

    def commit(self, data_dir: Path, state: dict) -> dict:
        """Collective, after every rank has written ``data_dir``. Writes the
        manifest and makes the checkpoint current; on any error removes
        ``data_dir``, keeps the old pointer and raises CheckpointIOError on
        every rank. Returns the state written."""
        self.comm.barrier()
        data_dir = Path(data_dir)
        error = None
        new = None
        if self.comm.rank == 0:
            man_path = data_dir.with_name(data_dir.name.removesuffix(".bp") + MANIFEST_SUFFIX)
            try:
                manifest = make_manifest(data_dir)
                if not manifest["files"]:
                    raise OSError(errno.EIO, f"{data_dir.name}: no data was written")
                write_json_atomic(man_path, manifest)
                old = self._state()
                previous = None
                if old and old.get("manifest") and verify(self.directory, old) is None:
                    previous = {k: v for k, v in old.items() if k != "previous"}
                elif old and isinstance(old.get("previous"), dict):
                    previous = old["previous"]  # the current one is damaged: keep the last good one
                new = {**state, "file": data_dir.name, "manifest": man_path.name, "bytes": manifest["bytes"],
                       "previous": previous}
                write_json_atomic(self.directory / STATE, new)
            except OSError as exc:
                error = f"checkpoint {data_dir.name} not written: {exc.strerror or exc}"
                shutil.rmtree(data_dir, ignore_errors=True)
                man_path.unlink(missing_ok=True)
            else:
                self._prune(new)
        self._agree(error)
        return self.comm.bcast(new, root=0)

    def abandon(self, data_dir: Path) -> None:
        """Collective: remove a data directory whose write failed (the pointer is untouched)."""
        self.comm.barrier()
        if self.comm.rank == 0:
            data_dir = Path(data_dir)
            shutil.rmtree(data_dir, ignore_errors=True)
            data_dir.with_name(data_dir.name.removesuffix(".bp") + MANIFEST_SUFFIX).unlink(missing_ok=True)
        self.comm.barrier()

    def _prune(self, state: dict) -> None:
        """Remove data and manifests other than the current and previous checkpoint (rank 0)."""
        keep = {state["file"], state["manifest"]}
        if state.get("previous"):
            keep |= {state["previous"].get("file"), state["previous"].get("manifest")}
        for p in self.directory.iterdir():
            if p.name in keep or p.name == STATE or p.name.startswith("."):
                continue
            if p.name.startswith("step_") and (p.name.endswith(".bp") or p.name.endswith(MANIFEST_SUFFIX)):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)

    # -- reading ---------------------------------------------------------------
    def select_for_restart(self, log=None) -> dict:
        """Collective. The state of the newest checkpoint that passes its
        manifest: the current one, else (logged) the previous one. Raises
        CheckpointDamaged with one line on every rank if none does."""
        error, chosen = None, None
        if self.comm.rank == 0:
            state = self._state()
            if state is None:
                error = f"--restart: {self.directory / STATE} is missing or not JSON"
            elif "manifest" not in state and (self.directory / str(state.get("file", ""))).is_dir():
                chosen = state  # written by an older version: nothing to verify it against
                if log is not None:
                    log.info(f"checkpoint {state.get('file')} has no manifest (an older version wrote it): "
                             "read without verification")
            else:
                why = verify(self.directory, state)
                if why is None:
                    chosen = state
                else:
                    prev = state.get("previous")
                    why_prev = verify(self.directory, prev) if isinstance(prev, dict) else "there is none"
                    if why_prev is None:
                        chosen = {**prev, "fallback_from": state.get("file"), "fallback_reason": why}
                        if log is not None:
                            log.info(f"checkpoint {state.get('file')} (step {state.get('step')}) is damaged: {why}; "
                                     f"restarting from the previous good one, {prev.get('file')} "
                                     f"(step {prev.get('step')})")
                    else:
                        error = (f"--restart: checkpoint {state.get('file')} (step {state.get('step')}) is damaged: "
                                 f"{why}; the previous one is not usable either ({why_prev})")
        self._agree(error, CheckpointDamaged)
        return self.comm.bcast(chosen, root=0)

    def agree_read(self, ok: bool, reason: str = "") -> None:
        """Collective, after each rank's read: an error on any rank is an error on all."""
        reasons = self.comm.allgather(None if ok else (reason or "read failed"))
        bad = [r for r in reasons if r]
        if bad:
            raise CheckpointDamaged(f"--restart: the checkpoint could not be read ({bad[0]})")
