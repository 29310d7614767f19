"""The cluster route for real: a single-node Slurm from Debian packages
(munged, slurmctld, slurmd, started by docker/slurm/minicluster in its own
directory under build/, on free ports) runs the batch template
docker/slurm/nacrack.sbatch: the demo completes; a job that reaches its time
limit is stopped by the template's SIGTERM, ends 'interrupted' (exit 130) at
a completed step, is requeued and finishes by --restart with one row per
step; a job with a bad config fails with its exit code and log where the
template says. Needs root and the slurm-wlm and munge packages (both in
docker/packages.txt); the daemons are stopped in the fixture's teardown."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "docker" / "slurm" / "nacrack.sbatch"
MINICLUSTER = ROOT / "docker" / "slurm" / "minicluster"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or not all(shutil.which(b) for b in ("munged", "slurmctld", "slurmd", "sbatch")),
                       reason="needs root and Slurm + munge (Debian slurm-wlm, munge)"),
]

# Two grains, a Na layer, all five fields on an 80 x 80 mesh, 0.01 s steps
# (0.6 s each on 2 idle ranks with the monolithic coupling; 16 x 16 took 0.06 s
# and the whole run ended before the signal): 200 steps take about 2 min,
# longer than the first attempt gets (the SIGTERM comes 5 to 35 s into the job: the
# controller checks time limits every 30 s).
LONG = """\
name: cluster_long
mesh: {kind: rectangle, width: 4 um, height: 4 um, structured: 80, grains: 2, seed: 1,
       orientation: {mode: given, angles: [30 deg, 120 deg]}}
electrochemistry: {interface_width: 0.5 um, initial_na: [{type: layer, thickness: 1.2 um}]}
fracture: {model: stress, length_scale: 0.5 um, strength_bulk: 3 GPa, strength_plane: 3 GPa,
           strength_grain_boundary: 3 GPa}
loading: {electrical: {control: potentiostatic, voltage: 0.1 V}}
time: {t_end: 2 s, dt: 0.01 s, growth: 1.0}
output: {every: 100, checkpoint_every: 5}
"""
LONG_STEPS = 200


@pytest.fixture(scope="module")
def slurm():
    """A running single-node Slurm; yields the environment to talk to it."""
    directory = ROOT / "build" / "slurm-test"  # logs kept for a look after a failure; wiped at the next start
    env = dict(os.environ, SLURM_CONF=str(directory / "etc" / "slurm.conf"))
    try:
        res = subprocess.run([str(MINICLUSTER), "start", str(directory)], capture_output=True, text=True, timeout=180)
        assert res.returncode == 0, res.stdout + res.stderr
        yield env
    finally:
        subprocess.run([str(MINICLUSTER), "stop", str(directory)], timeout=120)


def _sbatch(env, *args) -> str:
    res = subprocess.run(["sbatch", "--parsable", f"--chdir={ROOT}", *args], env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().split(";")[0]


def _job(env, job_id) -> dict:
    res = subprocess.run(["scontrol", "show", "job", "-o", job_id], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return dict(re.findall(r"(\w+)=(\S*)", res.stdout))


def _wait(env, job_id, until, timeout):
    start = time.time()
    while time.time() - start < timeout:
        job = _job(env, job_id)
        if until(job):
            return job
        time.sleep(2)
    raise AssertionError(f"job {job_id} still {job.get('JobState')} after {timeout} s: {job}")


def _done(job):
    return job["JobState"] in ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "NODE_FAIL", "OUT_OF_MEMORY")


def _steps(out: Path) -> list[int]:
    with open(out / "scalars.csv") as fh:
        return [int(r["step"]) for r in csv.DictReader(fh)]


def _attempts(out: Path) -> list[tuple[int, int, str]]:
    """(attempt, exit code, status) per line of OUTDIR/slurm-jobs.log."""
    lines = (out / "slurm-jobs.log").read_text().splitlines()
    return [(int(a), int(c), s) for a, c, s in (re.search(r"attempt (\d+) exit (\d+) status (\w+)", ln).groups()
                                                for ln in lines)]


def test_demo_job_completes(slurm, tmp_path):
    """The template on the demo config (first 2 steps), 2 tasks: COMPLETED, exit 0, one row per step."""
    out = tmp_path / "demo"
    job_id = _sbatch(slurm, f"--output={tmp_path}/slurm-%j.out", str(TEMPLATE), "configs/demo.yaml", str(out),
                     "--set", "time.max_steps=2")
    job = _wait(slurm, job_id, _done, timeout=900)
    log = (tmp_path / f"slurm-{job_id}.out").read_text()
    assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", log[-3000:]
    assert "2 tasks" in log and job["NumTasks"] == "2"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["steps"] == 2
    assert summary["status"] in ("completed", "max_steps")
    assert _steps(out) == [1, 2]
    assert _attempts(out) == [(0, 0, summary["status"])]


def test_time_limit_interrupts_requeues_and_restarts(slurm, tmp_path):
    """--time=1 with the signal 55 s before the limit: the first attempt ends
    'interrupted' (exit 130) at a completed step and requeues itself; once
    requeued, the limit is raised and the 2-minute requeue hold lifted
    (scontrol update, as an operator would) and the job finishes by
    --restart: every step once, status completed."""
    cfg = tmp_path / "long.yaml"
    cfg.write_text(LONG)
    out = tmp_path / "long"
    job_id = _sbatch(slurm, "--time=1", "--signal=B:TERM@55", f"--output={tmp_path}/slurm-%j.out",
                     str(TEMPLATE), str(cfg), str(out))
    log_path = tmp_path / f"slurm-{job_id}.out"
    _wait(slurm, job_id, lambda j: int(j["Restarts"]) >= 1 or _done(j), timeout=300)
    first = _attempts(out)[0]
    assert first[1:] == (130, "interrupted"), log_path.read_text()[-3000:]
    interrupted_at = _steps(out)
    assert 0 < len(interrupted_at) < LONG_STEPS and interrupted_at == list(range(1, len(interrupted_at) + 1))
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["step"] == interrupted_at[-1]  # the stop checkpointed the last completed step
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "TimeLimit=30", "StartTime=now"], env=slurm, check=True, timeout=60)
    job = _wait(slurm, job_id, lambda j: _done(j) and int(j["Restarts"]) >= 1 and j["JobState"] != "PENDING",
                timeout=900)
    log = log_path.read_text()
    assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", log[-3000:]
    assert "requeueing job" in log and "--restart" in log
    attempts = _attempts(out)
    assert attempts[0] == (0, 130, "interrupted") and attempts[-1][1:] == (0, "completed")
    assert [a for a, _, _ in attempts] == list(range(len(attempts)))
    assert _steps(out) == list(range(1, LONG_STEPS + 1))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == LONG_STEPS


def test_failing_job_leaves_exit_code_and_log(slurm, tmp_path):
    """A bad config: the job FAILED with the run's exit code 1, the error in
    the Slurm log and in OUTDIR/slurm-jobs.log."""
    out = tmp_path / "bad"
    job_id = _sbatch(slurm, f"--output={tmp_path}/slurm-%j.out", str(TEMPLATE), "configs/demo.yaml", str(out),
                     "--set", "time.dt=-1 s")
    job = _wait(slurm, job_id, _done, timeout=300)
    log = (tmp_path / f"slurm-{job_id}.out").read_text()
    assert job["JobState"] == "FAILED" and job["ExitCode"] == "1:0", log[-3000:]
    assert "time.dt" in log
    assert _attempts(out) == [(0, 1, "none")]
