"""Checkpoints that survive anything (issue 23): manifest, atomic pointer,
previous good checkpoint, verification before any collective read, full
disk, SIGTERM during a restart.

The unit tests drive solver.io.checkpoint_store with fake data directories
(no DOLFINx); the end-to-end tests run a 3-step electrochemistry-only
config (about 5 s each) and damage its checkpoint files one by one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mpi4py import MPI

from solver.io.checkpoint_store import (
    STATE,
    CheckpointDamaged,
    CheckpointIOError,
    CheckpointStore,
    verify,
)

ROOT = Path(__file__).resolve().parents[1]


def _write(store: CheckpointStore, step: int, payload: bytes = b"x" * 1000) -> dict:
    path = store.begin(step)
    path.mkdir()
    (path / "data.0").write_bytes(payload + bytes([step % 256]))
    (path / "md.0").write_bytes(b"meta" * 10)
    return store.commit(path, {"step": step, "time_s": 0.1 * step, "ranks": 1})


def test_commit_writes_manifest_pointer_and_keeps_previous(tmp_path):
    store = CheckpointStore(tmp_path, MPI.COMM_SELF)
    names = [_write(store, s)["file"] for s in (1, 2, 3)]
    state = json.loads((tmp_path / STATE).read_text())
    assert state["file"] == names[2] and state["previous"]["file"] == names[1]
    assert state["previous"].get("previous") is None  # one level only: the pointer stays small
    assert verify(tmp_path, state) is None and verify(tmp_path, state["previous"]) is None
    assert not (tmp_path / names[0]).exists()  # older than the previous one: removed
    man = json.loads((tmp_path / state["manifest"]).read_text())
    assert man["files"]["data.0"]["bytes"] == 1001 and len(man["files"]["data.0"]["sha256"]) == 64
    assert len({n for n in names}) == 3  # never the same directory twice


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest"])
def test_damaged_current_falls_back_to_previous(tmp_path, damage):
    store = CheckpointStore(tmp_path, MPI.COMM_SELF)
    _write(store, 1)
    cur = _write(store, 2)
    f = tmp_path / cur["file"] / "data.0"
    if damage == "truncate":
        f.write_bytes(f.read_bytes()[:100])
    elif damage == "flip":
        b = bytearray(f.read_bytes())
        b[10] ^= 0xFF
        f.write_bytes(bytes(b))
    elif damage == "delete":
        f.unlink()
    else:
        (tmp_path / cur["manifest"]).write_text("{not json")
    assert verify(tmp_path, cur) is not None

    class Log:
        lines: list = []

        def info(self, s):
            self.lines.append(s)

    log = Log()
    chosen = store.select_for_restart(log)
    assert chosen["step"] == 1 and chosen["fallback_from"] == cur["file"]
    assert any("damaged" in line and "previous good" in line for line in log.lines)
    # the next checkpoint after a fallback keeps the good one as previous, not the damaged one
    nxt = _write(store, 3)
    assert nxt["previous"]["step"] == 1


def test_both_damaged_is_one_clear_error(tmp_path):
    store = CheckpointStore(tmp_path, MPI.COMM_SELF)
    for s in (1, 2):
        st = _write(store, s)
    for name in (st["file"], st["previous"]["file"]):
        (tmp_path / name / "md.0").write_bytes(b"")
    with pytest.raises(CheckpointDamaged) as exc:
        store.select_for_restart()
    msg = str(exc.value)
    assert "\n" not in msg and "damaged" in msg and st["file"] in msg and "md.0" in msg


def test_full_disk_refused_before_writing_and_pointer_intact(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path, MPI.COMM_SELF)
    good = _write(store, 1)
    before = (tmp_path / STATE).read_bytes()

    class Full:
        f_bavail, f_frsize = 10, 4096

    monkeypatch.setattr(os, "statvfs", lambda p: Full())
    with pytest.raises(CheckpointIOError, match="no space left"):
        store.begin(2)
    assert (tmp_path / STATE).read_bytes() == before
    assert verify(tmp_path, good) is None
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("step_")) == sorted(
        [good["file"], good["manifest"]])


def test_failed_commit_removes_new_data_and_keeps_pointer(tmp_path, monkeypatch):
    import solver.io.checkpoint_store as cs

    store = CheckpointStore(tmp_path, MPI.COMM_SELF)
    good = _write(store, 1)
    before = (tmp_path / STATE).read_bytes()
    path = store.begin(2)
    path.mkdir()
    (path / "data.0").write_bytes(b"y" * 50)

    def enospc(p, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cs, "write_json_atomic", enospc)
    with pytest.raises(CheckpointIOError, match="No space left"):
        store.commit(path, {"step": 2, "ranks": 1})
    assert not path.exists()
    assert (tmp_path / STATE).read_bytes() == before and verify(tmp_path, good) is None


# --------------------------------------------------------------------------
# end to end (DOLFINx + adios4dolfinx)
# --------------------------------------------------------------------------
CONFIG = """\
name: ck
mesh: {kind: rectangle, width: 2 um, height: 4 um, structured: 8}
electrochemistry:
  interface_width: 1 um
  initial_na:
    - {type: layer, thickness: 1 um}
mechanics: {enabled: false}
fracture: {enabled: false}
loading:
  electrical: {control: potentiostatic, voltage: 0.05 V}
time: {t_end: T_END, dt: 0.01 s, growth: 1.0}
output: {checkpoint_every: 1}
"""


def _solver(args, timeout=120, **kw):
    return subprocess.run([sys.executable, "-m", "solver", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    pytest.importorskip("adios4dolfinx")
    base = tmp_path_factory.mktemp("ck")
    cfg = base / "ck.yaml"
    cfg.write_text(CONFIG.replace("T_END", "0.02 s"))
    out = base / "run"
    r = _solver(["run", cfg, "-o", out])
    assert r.returncode == 0, r.stderr[-2000:]
    (base / "ck_longer.yaml").write_text(CONFIG.replace("T_END", "0.03 s"))
    return base, out


def _copy(finished_run, tmp_path) -> tuple[Path, Path]:
    base, out = finished_run
    dst = tmp_path / "run"
    shutil.copytree(out, dst)
    return base / "ck_longer.yaml", dst


def _checkpoint_files(out: Path) -> list[str]:
    state = json.loads((out / "checkpoint" / STATE).read_text())
    return sorted(str(p.relative_to(out / "checkpoint" / state["file"]))
                  for p in (out / "checkpoint" / state["file"]).rglob("*") if p.is_file())


def test_restart_from_intact_checkpoint(finished_run, tmp_path):
    cfg, out = _copy(finished_run, tmp_path)
    r = _solver(["run", cfg, "-o", out, "--restart"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert "restart from step 2" in r.stdout and "damaged" not in r.stdout
    assert json.loads((out / "summary.json").read_text())["steps"] == 3


def test_truncate_each_checkpoint_file_in_turn(finished_run, tmp_path):
    """Each file of the current checkpoint cut to half: the restart names the
    damage, takes the previous checkpoint (step 1) and completes; never a hang."""
    files = _checkpoint_files(finished_run[1])
    assert {"data.0", "md.0"} <= set(files)
    for i, rel in enumerate(files):
        cfg, out = _copy(finished_run, tmp_path / str(i))
        state = json.loads((out / "checkpoint" / STATE).read_text())
        f = out / "checkpoint" / state["file"] / rel
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
        r = _solver(["run", cfg, "-o", out, "--restart"], timeout=180)
        assert r.returncode == 0, (rel, r.stderr[-2000:])
        assert f"{rel} has" in r.stdout and "restarting from the previous good one" in r.stdout, rel
        assert "restart from step 1" in r.stdout, rel
        assert json.loads((out / "summary.json").read_text())["status"] == "completed"


def test_both_checkpoints_damaged_refused_in_one_line(finished_run, tmp_path):
    cfg, out = _copy(finished_run, tmp_path)
    before = (out / "summary.json").read_bytes()
    state = json.loads((out / "checkpoint" / STATE).read_text())
    for entry in (state, state["previous"]):
        (out / "checkpoint" / entry["file"] / "data.0").write_bytes(b"")
    r = _solver(["run", cfg, "-o", out, "--restart"], timeout=120)
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "damaged" in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert (out / "summary.json").read_bytes() == before  # a refused restart leaves the summary alone


def test_two_ranks_damaged_checkpoint_no_hang(finished_run, tmp_path):
    """2 ranks: the verdict is broadcast before any collective read. Runs in the
    serial pass and starts its own `mpirun -n 2` (not marked mpi: under an
    mpirun-launched pytest the module fixture's subprocess run would hang on a
    nested MPI start)."""
    if shutil.which("mpirun") is None or MPI.COMM_WORLD.size > 1:
        pytest.skip("needs mpirun, run from a serial pytest")
    cfg, out = _copy(finished_run, tmp_path)
    state = json.loads((out / "checkpoint" / STATE).read_text())
    for entry in (state, state["previous"]):
        f = out / "checkpoint" / entry["file"] / "data.0"
        f.write_bytes(f.read_bytes()[:100])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PMI_"))}
    r = subprocess.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-n", "2", sys.executable, "-m",
                        "solver", "run", str(cfg), "-o", str(out), "--restart"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "damaged" in r.stderr and "Traceback" not in r.stderr


def test_sigterm_during_restart_stops_cleanly(finished_run, tmp_path):
    """SIGTERM while a restart starts (import, mesh, checkpoint read): the run
    ends (130, or 0 if it finished first) within seconds; the checkpoint stays good."""
    cfg, out = _copy(finished_run, tmp_path)
    p = subprocess.Popen([sys.executable, "-m", "solver", "run", str(cfg), "-o", str(out), "--restart"], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out / "log.txt").read_text().count("run 'ck'") >= 2:
        time.sleep(0.05)  # the restart has begun its run (the old log holds the first 'run' line)
    p.send_signal(signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("the restart hung after SIGTERM")
    assert p.returncode in (0, 130), err[-2000:]
    assert "Traceback" not in err
    state = json.loads((out / "checkpoint" / STATE).read_text())
    assert verify(out / "checkpoint", state) is None
    if p.returncode == 130:
        assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"


def _can_mount_tmpfs(where: Path) -> str | None:
    if shutil.which("unshare") is None:
        return "no unshare"
    r = subprocess.run(["unshare", "--mount", "--propagation", "unchanged", "sh", "-c",
                        f"mount -t tmpfs -o size=64k tmpfs '{where}' && umount '{where}'"],
                       capture_output=True, text=True)
    return None if r.returncode == 0 else f"cannot mount a tmpfs in a private mount namespace: {r.stderr.strip()}"


@pytest.mark.parametrize("free_kb", [0, 600])
def test_full_disk_stops_cleanly(finished_run, tmp_path, free_kb):
    """A restart into a tmpfs with `free_kb` left: 0 -> the first scalars.csv
    write fails; 600 -> the checkpoint's space check refuses. Either way: exit
    2, no abort, status 'failed' with the reason (or the previous summary
    kept), the last good checkpoint intact and restartable elsewhere."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    why = _can_mount_tmpfs(mnt)
    if why:
        pytest.skip(why)
    cfg, src = _copy(finished_run, tmp_path)
    size_kb = 4096
    script = f"""
set -e
mount -t tmpfs -o size={size_kb}k tmpfs '{mnt}'
cp -a '{src}' '{mnt}/run'
used=$(du -sk '{mnt}' | cut -f1)
fill=$(( {size_kb} - used - {free_kb} - 64 ))
[ $fill -gt 0 ] && dd if=/dev/zero of='{mnt}/filler' bs=1k count=$fill status=none 2>/dev/null || true
[ {free_kb} -eq 0 ] && (cat /dev/zero > '{mnt}/filler2' 2>/dev/null || true)
set +e
'{sys.executable}' -m solver run '{cfg}' -o '{mnt}/run' --restart > '{tmp_path}/out.txt' 2> '{tmp_path}/err.txt'
echo $? > '{tmp_path}/rc.txt'
rm -f '{mnt}/filler' '{mnt}/filler2'
cp -a '{mnt}/run' '{tmp_path}/after'
umount '{mnt}'
"""
    r = subprocess.run(["unshare", "--mount", "--propagation", "unchanged", "sh", "-c", script], cwd=ROOT,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    rc = int((tmp_path / "rc.txt").read_text())
    out, err = (tmp_path / "out.txt").read_text(), (tmp_path / "err.txt").read_text()
    assert rc == 2, (rc, out[-1500:], err[-1500:])
    assert "Traceback" not in err and "Abort" not in err
    after = tmp_path / "after"
    summary = json.loads((after / "summary.json").read_text())
    if summary["status"] == "failed":
        assert "space" in summary["reason"].lower() or "No space" in summary["reason"]
    else:  # the summary could not be written: the previous one is kept whole
        assert summary["status"] == "completed" and summary["steps"] == 2
    state = json.loads((after / "checkpoint" / STATE).read_text())
    assert verify(after / "checkpoint", state) is None and state["step"] >= 2
    r2 = _solver(["run", cfg, "-o", after, "--restart"])
    assert r2.returncode == 0, r2.stderr[-2000:]
    assert json.loads((after / "summary.json").read_text())["status"] == "completed"


def test_checkpoint_of_an_older_version_is_read_unverified(tmp_path):
    """state.json without a manifest (written before manifests existed) is accepted, logged."""
    (tmp_path / "step_0000005.bp").mkdir()
    (tmp_path / "step_0000005.bp" / "data.0").write_bytes(b"z")
    (tmp_path / STATE).write_text(json.dumps({"file": "step_0000005.bp", "step": 5, "ranks": 1}))
    lines = []

    class Log:
        def info(self, s):
            lines.append(s)

    assert CheckpointStore(tmp_path, MPI.COMM_SELF).select_for_restart(Log())["step"] == 5
    assert "no manifest" in lines[0]
