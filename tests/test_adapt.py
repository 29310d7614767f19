"""Adaptive mesh (solver/mesh/adapt.py, config mesh.adapt, docs/user/adaptivity.md).

Tags and orientations carried exactly through refinement and
redistribution; the damage history never decreases through a transfer; the
metal volume error of each remesh measured and bounded; E1 (planar front
velocity) and E2 (Faraday) on an adapting mesh at their tolerances; C1 (1 vs
2 ranks) on an adapting mesh; restart on an adapted mesh onto another number
of ranks; the DOF budget; a failed transfer stops the run with the last
good checkpoint intact.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
F = 96485.33212

# test_coupled.SMALL on a coarse base (8 x 8, h = delta) refined 2 levels (h_min = delta / 4)
SMALL = {
    "name": "adapt_small",
    "mesh": {"kind": "rectangle", "width": "4 um", "height": "4 um", "structured": 8, "grains": 2, "seed": 1,
             "orientation": {"mode": "given", "angles": ["30 deg", "120 deg"]},
             "adapt": {"enabled": True, "every": 2, "levels": 2, "margin": "0.25 um"}},
    "electrochemistry": {"interface_width": "0.5 um", "initial_na": [{"type": "layer", "thickness": "1.2 um"}]},
    "fracture": {"model": "stress", "length_scale": "0.5 um", "strength_bulk": "3 GPa", "strength_plane": "3 GPa",
                 "strength_grain_boundary": "3 GPa"},
    "loading": {"electrical": {"control": "potentiostatic", "voltage": "0.1 V"}},
    "time": {"t_end": "0.06 s", "dt": "0.01 s", "growth": 1.0},
    "output": {"every": 2, "checkpoint_every": 3},
}
KEYS = ("metal_area_m2", "charge_C_m", "current_density_A_m2", "dendrite_tip_m", "elastic_energy_J_m")


def _cfg(raw=SMALL, overrides=()):
    from solver.config import load_config

    return load_config(raw=json.loads(json.dumps(raw)), overrides=list(overrides))


def _rows(path: Path) -> list[dict]:
    with open(path / "scalars.csv") as fh:
        return list(csv.DictReader(fh))


def _col(rows, key):
    return np.array([float(r[key]) for r in rows])


# --------------------------------------------------------------------------
def test_config_errors_name_key_value_and_expectation():
    from solver.config import ConfigError, validate

    for bad, expect in (({"levels": 0}, "mesh.adapt.levels = 0"), ({"xi_band": [0.5, 0.2]}, "0 < low < high < 1"),
                        ({"every": 0}, "mesh.adapt.every = 0"), ({"margin": "-1 um"}, "mesh.adapt.margin"),
                        ({"max_dofs": 0}, "mesh.adapt.max_dofs = 0"), ({"lvls": 2}, "did you mean 'levels'")):
        with pytest.raises(ConfigError) as exc:
            validate({"mesh": {"adapt": bad}})
        lines = [ln for ln in str(exc.value).splitlines() if ln.strip()]
        assert len(lines) == 1 and expect in lines[0], lines
    cfg = validate({"mesh": {"adapt": {"enabled": True, "h_min": "0.1 um", "margin": "2 um"}}})
    assert cfg.mesh.adapt.h_min == pytest.approx(1e-7) and cfg.mesh.adapt.margin == pytest.approx(2e-6)


# --------------------------------------------------------------------------
def _rule(msh, cells):
    """Grain by position, constant on the cells of a 0.5 x 0.5 grid."""
    from dolfinx import mesh as dmesh

    mid = dmesh.compute_midpoints(msh, 2, cells)
    return (np.floor(mid[:, 0]) * 10 + np.floor(mid[:, 1] * 2)).astype(np.int32) + 1


@pytest.mark.mpi
def test_tags_and_orientations_are_carried_exactly(comm):
    """Grain ids (parent cells) and facet tags (parent facets) through two
    refinements and the ghosted redistribution: every cell's grain is the
    grain at its centroid, every tagged facet is where its tag says (bottom,
    outer), no boundary facet is lost; orientations are the per-grain table."""
    from dolfinx import mesh as dmesh

    from solver.mesh.adapt import TaggedMesh, redistribute, refine_once

    msh = dmesh.create_rectangle(comm, [[0, 0], [4, 2]], [8, 4], dmesh.CellType.triangle,
                                 ghost_mode=dmesh.GhostMode.shared_facet)
    im = msh.topology.index_map(2)
    msh.topology.create_connectivity(1, 2)
    bnd = dmesh.exterior_facet_indices(msh.topology)
    fm = dmesh.compute_midpoints(msh, 1, bnd)
    ft = dmesh.meshtags(msh, 1, bnd, np.where(np.abs(fm[:, 1]) < 1e-9, 1, 3).astype(np.int32))
    tm = TaggedMesh(msh, _rule(msh, np.arange(im.size_local + im.num_ghosts, dtype=np.int32)), ft)

    def check(tm, label):
        m = tm.mesh
        ci = m.topology.index_map(2)
        n = ci.size_local + ci.num_ghosts
        bad = comm.allreduce(int(np.sum(_rule(m, np.arange(n, dtype=np.int32)) != tm.grain[:n])))
        mid = dmesh.compute_midpoints(m, 1, tm.facet_tags.indices)
        fbad = comm.allreduce(int(np.sum((np.abs(mid[:, 1]) < 1e-9) != (tm.facet_tags.values == 1))))
        m.topology.create_connectivity(1, 2)
        ext = dmesh.exterior_facet_indices(m.topology)
        nf = m.topology.index_map(1).size_local
        lost = comm.allreduce(int(np.setdiff1d(ext[ext < nf], tm.facet_tags.indices).size))
        assert (bad, fbad, lost) == (0, 0, 0), label

    check(tm, "input")
    u = redistribute(tm, dmesh.GhostMode.none)
    check(u, "unghosted")
    cen = dmesh.compute_midpoints(u.mesh, 2, np.arange(u.n_owned(), dtype=np.int32))
    r1 = refine_once(u, np.flatnonzero(cen[:, 1] < 0.6).astype(np.int32))
    check(r1, "level 1")
    cen = dmesh.compute_midpoints(r1.mesh, 2, np.arange(r1.n_owned(), dtype=np.int32))
    r2 = refine_once(r1, np.flatnonzero(cen[:, 1] < 0.3).astype(np.int32))
    check(r2, "level 2")
    assert r2.global_cells() > r1.global_cells() > u.global_cells()
    g = redistribute(r2, dmesh.GhostMode.shared_facet)
    check(g, "ghosted")
    assert g.global_cells() == r2.global_cells()
    assert comm.allreduce(g.mesh.topology.index_map(2).num_ghosts) > 0 or comm.size == 1


@pytest.mark.mpi
def test_adapted_domain_grains_orientation_and_grain_boundaries(comm, shared_tmp):
    """The Domain the adapter builds: the grain of each cell is the base
    grain at its centroid, theta = the grain's angle, grain-boundary facets
    exactly the facets between two grains, electrodes at y = 0 and y = H."""
    from dolfinx import fem
    from dolfinx import mesh as dmesh

    from solver.mesh.adapt import MeshAdapter, redistribute
    from solver.mesh.domain import tag_grain_boundaries
    from solver.mesh.tags import COUNTER_ELECTRODE, GRAIN_BOUNDARY, PLATING_ELECTRODE
    from solver.run import RunContext, build_model

    cfg = _cfg(overrides=["mesh.grains=5", "mesh.orientation.mode=random"])
    ctx = RunContext(cfg, shared_tmp, comm)
    model = build_model(ctx)
    ad = MeshAdapter(ctx, model, lambda d: build_model(ctx, d))
    band = np.array([[x, 1.3, 0.0] for x in np.linspace(0.0, 4.0, 81)])
    tm, levels, capped = ad.refined_base(band, 6.0)
    assert levels == 2 and not capped
    dom = ad.make_domain(redistribute(tm, dmesh.GhostMode.shared_facet))
    msh = dom.mesh
    n = msh.topology.index_map(2).size_local
    # grain at the centroid on the base mesh (DG0, point evaluation at the new centroids)
    g = fem.Function(dom.grain_id.function_space)
    cells = np.arange(n + msh.topology.index_map(2).num_ghosts, dtype=np.int32)
    g.interpolate_nonmatching(model.domain.grain_id, cells,
                              fem.create_interpolation_data(g.function_space, model.domain.grain_id.function_space,
                                                            cells, padding=1e-10))
    dofs = dom.grain_id.function_space.dofmap.list[:n, 0]
    assert comm.allreduce(int(np.sum(g.x.array[dofs] != dom.grain_id.x.array[dofs]))) == 0
    grain = dom.cell_tags.values
    angles = np.asarray(model.domain.info["angles"])
    assert np.array_equal(dom.theta.x.array[dom.theta.function_space.dofmap.list[:n, 0]], angles[grain[:n] - 1])
    gb, _ = tag_grain_boundaries(msh, grain)
    nf = msh.topology.index_map(1).size_local
    tagged = dom.facet_tags.find(GRAIN_BOUNDARY)
    assert np.array_equal(np.sort(tagged[tagged < nf]), np.sort(gb[gb < nf]))
    assert comm.allreduce(int(np.sum(gb < nf))) > 0
    for tag, y in ((PLATING_ELECTRODE, 0.0), (COUNTER_ELECTRODE, 4.0)):
        f = dom.facet_tags.find(tag)
        assert np.allclose(dmesh.compute_midpoints(msh, 1, f)[:, 1], y)
        assert comm.allreduce(int(np.sum(f < nf))) >= 8
    # the refined band: cells near y = 1.3 are 4x smaller than the base
    assert comm.allreduce(tm.global_cells()) > comm.allreduce(model.domain.mesh.topology.index_map(2).size_global)


@pytest.mark.mpi
def test_damage_history_never_decreases_through_a_transfer(comm):
    """H (DG0) onto a coarser mesh and back onto a finer one: at every old
    cell centroid the new H is >= the old H (the max over the old cells in a
    new cell), and equal where the new mesh is nested inside the old cells."""
    from dolfinx import fem
    from dolfinx import mesh as dmesh

    from solver.mesh.adapt import TaggedMesh, redistribute, refine_once, transfer_history_max

    coarse = dmesh.create_rectangle(comm, [[0, 0], [2, 2]], [4, 4], dmesh.CellType.triangle,
                                    ghost_mode=dmesh.GhostMode.shared_facet)
    coarse.topology.create_connectivity(1, 2)
    ft = dmesh.meshtags(coarse, 1, np.zeros(0, np.int32), np.zeros(0, np.int32))
    im = coarse.topology.index_map(2)
    u = redistribute(TaggedMesh(coarse, np.ones(im.size_local + im.num_ghosts, np.int32), ft), dmesh.GhostMode.none)
    for _ in range(2):
        u = refine_once(u, np.arange(u.n_owned(), dtype=np.int32))
    fine = redistribute(u, dmesh.GhostMode.shared_facet).mesh
    rng = np.random.default_rng(comm.rank + 7)

    def random_h(msh):
        Q = fem.functionspace(msh, ("DG", 0))
        H = fem.Function(Q)
        H.x.array[:] = rng.uniform(0.0, 10.0, H.x.array.size)
        H.x.scatter_forward()
        return H

    def at_centroids_of(H_new, H_old):
        """H_new evaluated at the old centroids (DG0 point interpolation)."""
        probe = fem.Function(H_old.function_space)
        msh = H_old.function_space.mesh
        cells = np.arange(msh.topology.index_map(2).size_local, dtype=np.int32)
        probe.interpolate_nonmatching(H_new, cells, fem.create_interpolation_data(
            H_old.function_space, H_new.function_space, cells, padding=1e-10))
        n = H_old.function_space.dofmap.index_map.size_local
        return probe.x.array[:n], H_old.x.array[:n]

    for src, dst in ((fine, coarse), (coarse, fine)):
        H_old = random_h(src)
        H_new = fem.Function(fem.functionspace(dst, ("DG", 0)))
        transfer_history_max(H_new, H_old, {}, 1e-10)
        new_at_old, old = at_centroids_of(H_new, H_old)
        assert comm.allreduce(int(np.sum(new_at_old < old - 1e-14))) == 0
        if src is fine:  # coarsening: the max of the 16 children, larger than a point value somewhere
            assert comm.allreduce(int(np.sum(new_at_old > old + 1e-12))) > 0
        else:  # refinement: each child takes its parent's value
            assert np.allclose(new_at_old, old, rtol=0, atol=1e-14)


@pytest.mark.mpi
def test_coupled_run_on_an_adapting_mesh(comm, shared_tmp, record_validation):
    """A coupled run remeshing every 2 steps: the metal volume error of each
    remesh (int xi dx before / after, from the transfer alone) is below a
    discretisation bound (1e-4 relative; measured 1.5e-15 on refinement,
    1.4e-6 where the band coarsens) and 1e-12 after the correction; the
    adapted mesh has fewer DOFs than the uniform mesh of the same h_min."""
    from solver.run import run

    cfg = _cfg()
    assert run(cfg, shared_tmp, comm=comm) == 0
    summary = json.loads((shared_tmp / "summary.json").read_text())
    recs = summary["adapt"]
    assert len(recs) == 2 and all(r["levels"] == 2 for r in recs)
    raw = max(abs(r["metal_rel_error_raw"]) for r in recs)
    after = max(abs(r["metal_rel_error"]) for r in recs)
    record_validation("adapt: metal volume error per remesh (raw, relative)", 0.0, raw, "1e-4", raw <= 1e-4)
    assert raw <= 1e-4 and after <= 1e-12
    uniform = 33 * 33 * 6  # the 32 x 32 mesh of h_min: P1 (xi, c~, psi), u (2), d per vertex
    assert sum(summary["dofs"].values()) < uniform
    assert (shared_tmp / "fields_0001.xdmf").exists() and (shared_tmp / "fields_0002.xdmf").exists()
    if comm.rank == 0:  # `solver report` reads every mesh's file as one series, in time order
        from solver.io.series import FieldSeries, RunSeries

        files = [shared_tmp / n for n in ("fields.xdmf", "fields_0001.xdmf", "fields_0002.xdmf")]
        per_file = []
        for f in files:
            with FieldSeries(f) as fs:
                per_file.append(fs.times())
        with RunSeries(shared_tmp) as series:
            times = [series.frame(k).t for k in range(len(series))]
            n_points = {len(series.frame(k).points) for k in range(len(series))}
        assert times == sorted(t for ts in per_file for t in ts) and all(per_file)
        assert len(n_points) >= 2  # frames on different meshes


# --------------------------------------------------------------------------
def _strip(eta, cells=16, every=4):
    """E1's strip (0.25 um x 8 um, delta = 1 um, Na layer 2 um), electrochemistry
    alone; base h = delta/2, 2 levels: h = delta/8 in the band, as E1's uniform mesh."""
    D = 100.0 * 3e-11
    return {"name": "e1_adapt",
            "mesh": {"width": "0.25 um", "height": "8 um", "structured": cells,
                     "adapt": {"enabled": True, "every": every, "levels": 2, "margin": "1 um"}},
            "materials": {"electrolyte": {"conductivity_parallel": 100.0, "conductivity_perpendicular": 100.0,
                                          "diffusivity_parallel": D, "diffusivity_perpendicular": D}},
            "electrochemistry": {"initial_na": [{"type": "layer", "thickness": "2 um"}]},
            "mechanics": {"enabled": False}, "fracture": {"enabled": False},
            "loading": {"electrical": {"control": "potentiostatic", "voltage": eta}},
            "time": {"t_end": "20 s", "dt": "0.5 s", "growth": 1.0},
            "output": {"every": 1000, "checkpoint_every": 1000}}


@pytest.mark.slow
def test_E1_planar_velocity_on_an_adapting_mesh(comm, shared_tmp, record_validation):
    """E1 on an adapting mesh: the front at uniform eta = 0.1 V moves at
    v = 1.5 delta L_eta |B(eta)| (3%), remeshing every 4 steps as the front
    moves, with fewer DOFs than the uniform mesh of the same h_min = delta/8
    (measured: 1122 vs 1755 DOFs; v within 3%)."""
    from solver.config import load_config
    from solver.physics.electrochemistry import bv_bracket, derived_parameters
    from solver.run import run

    eta = 0.1
    cfg = load_config(raw=_strip(eta))
    assert run(cfg, shared_tmp, comm=comm) == 0
    rows = _rows(shared_tmp)
    t, area = _col(rows, "time_s"), _col(rows, "metal_area_m2")
    half = len(rows) // 2
    v = np.polyfit(t[half:], area[half:], 1)[0] / 0.25e-6
    P = derived_parameters(cfg)
    v_th = P["planar_velocity_per_B_m_s"] * abs(bv_bracket(-eta, 0.5, P["f_1_V"]))
    summary = json.loads((shared_tmp / "summary.json").read_text())
    record_validation("E1 planar velocity on an adapting mesh [m/s], eta = 0.1 V", v_th, v, "3% rel",
                      abs(v / v_th - 1) <= 0.03)
    assert v == pytest.approx(v_th, rel=0.03)
    assert len(summary["adapt"]) >= 3
    # the uniform mesh of the same h_min: the 2 x 16 base refined twice everywhere, 8 x 64 cells, 3 P1 fields
    assert sum(summary["dofs"].values()) < 9 * 65 * 3


@pytest.mark.slow
@pytest.mark.parametrize("control", ["galvanostatic", "potentiostatic"])
def test_E2_faraday_on_an_adapting_mesh(comm, shared_tmp, control, record_validation):
    """E2 on an adapting mesh: Omega q / F = deposited area at 1e-8 (the
    consistent current; remeshing every 4 steps puts the metal volume back),
    galvanostatic q = i L t."""
    from solver.config import load_config
    from solver.run import run

    electrical = ({"control": "galvanostatic", "current_density": 30.0} if control == "galvanostatic"
                  else {"control": "potentiostatic", "voltage": 0.12})
    raw = {"name": "e2_adapt",
           "mesh": {"width": "4 um", "height": "6 um", "structured": 12, "grains": 1,
                    "orientation": {"mode": "given", "angles": [0.0]},
                    "adapt": {"enabled": True, "every": 4, "levels": 1, "margin": "0.5 um"}},
           "electrochemistry": {"initial_na": [{"type": "layer", "thickness": "1 um"},
                                               {"type": "ellipse", "center": ["2 um", "1 um"], "radius": "1 um",
                                                "radius_b": "2 um"}]},
           "mechanics": {"enabled": False}, "fracture": {"enabled": False},
           "loading": {"electrical": electrical},
           "time": {"t_end": "10 s", "dt": "0.5 s", "growth": 1.0},
           "output": {"every": 1000, "checkpoint_every": 1000}}
    cfg = load_config(raw=raw)
    assert run(cfg, shared_tmp, comm=comm) == 0
    rows = _rows(shared_tmp)
    q, dep = _col(rows, "charge_C_m")[-1], _col(rows, "deposited_volume_m3_m")[-1]
    Omega = cfg.materials.sodium.molar_volume
    assert abs(dep) > 1e-13
    record_validation(f"E2 Faraday on an adapting mesh, {control}: Omega q / F vs deposited area [m^2]",
                      Omega * q / F, dep, "1e-8 rel", abs(Omega * q / F / dep - 1) <= 1e-8)
    assert Omega * q / F == pytest.approx(dep, rel=1e-8, abs=0)
    assert len(json.loads((shared_tmp / "summary.json").read_text())["adapt"]) >= 4
    if control == "galvanostatic":
        assert q == pytest.approx(30.0 * 4e-6 * 10.0, rel=1e-8)


@pytest.mark.mpi
def test_C1_serial_and_parallel_agree_on_an_adapting_mesh(comm, shared_tmp, record_validation):
    """C1 through two remeshes: 1 rank (COMM_SELF) vs all ranks, 1e-6
    relative (the coupled Newton's tolerance; the adapted meshes are the same
    on any partition, measured 1e-9 on the current after a remesh)."""
    from mpi4py import MPI

    from solver.run import run

    cfg = _cfg(overrides=["time.t_end=0.05 s"])
    serial_dir = shared_tmp / f"serial{comm.rank}"
    assert run(cfg, serial_dir, comm=MPI.COMM_SELF) == 0
    assert run(cfg, shared_tmp / "parallel", comm=comm) == 0
    comm.barrier()
    a, b = _rows(serial_dir), _rows(shared_tmp / "parallel")
    assert len(a) == len(b) == 5
    sa = json.loads((serial_dir / "summary.json").read_text())
    sb = json.loads((shared_tmp / "parallel" / "summary.json").read_text())
    assert [r["cells"] for r in sa["adapt"]] == [r["cells"] for r in sb["adapt"]]
    for key in KEYS:
        va, vb = _col(a, key), _col(b, key)
        ok = np.allclose(va, vb, rtol=1e-6, atol=1e-12 * np.abs(va).max())
        record_validation(f"C1 adapting mesh, serial vs {comm.size} ranks: {key} after 5 steps", va[-1], vb[-1],
                          "1e-6 rel", ok)
        assert ok, (key, va, vb)


@pytest.mark.mpi
def test_dof_budget_stops_refining_and_says_so(comm, shared_tmp):
    """mesh.adapt.max_dofs below what 2 levels need: one level is made, the log says so, the budget holds."""
    from solver.run import run

    cfg = _cfg(overrides=["mesh.adapt.max_dofs=2000", "time.t_end=0.02 s"])
    assert run(cfg, shared_tmp, comm=comm) == 0
    log = (shared_tmp / "log.txt").read_text()
    assert "mesh.adapt.max_dofs = 2000: refinement stopped at level 1" in log
    summary = json.loads((shared_tmp / "summary.json").read_text())
    assert sum(summary["dofs"].values()) <= 2000


def test_failed_transfer_stops_cleanly_with_the_last_checkpoint(shared_tmp, monkeypatch):
    """A transfer that fails stops the run 'failed' naming mesh.adapt; the
    checkpoint holds the last good step on the old mesh and a restart reads it."""
    import solver.mesh.adapt as adapt
    from solver.io.checkpoint_store import CheckpointStore
    from solver.run import run

    def broken(old, new, padding):
        raise RuntimeError("simulated transfer failure")

    monkeypatch.setattr(adapt, "transfer_state", broken)
    cfg = _cfg()
    assert run(cfg, shared_tmp) == 2
    summary = json.loads((shared_tmp / "summary.json").read_text())
    assert summary["status"] == "failed" and "mesh.adapt: remesh at step 2 failed" in summary["reason"]
    assert summary["steps"] == 2
    state = CheckpointStore(shared_tmp / "checkpoint", __import__("mpi4py").MPI.COMM_WORLD).select_for_restart()
    assert state["step"] == 2 and not state.get("adapted", {}).get("remesh")
    monkeypatch.undo()
    assert run(_cfg(overrides=["time.t_end=0.03 s"]), shared_tmp, restart=True) == 0
    assert len(_rows(shared_tmp)) == 3


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("mpirun") is None, reason="needs mpirun")
def test_restart_on_an_adapted_mesh_onto_two_ranks(tmp_path):
    """C2 on an adapted mesh: a 1-rank run stopped at step 3 (after the
    first remesh) restarts on 2 ranks from the checkpoint's mesh, grain ids,
    orientations and facet tags, and ends where the straight 1-rank run ends
    (scalars 1e-6, the coupled Newton's tolerance)."""
    import yaml

    cfg = tmp_path / "adapt.yaml"
    cfg.write_text(yaml.safe_dump(json.loads(json.dumps(SMALL))))

    def solver(out, ranks, *extra):
        cmd = [sys.executable, "-m", "solver", "run", str(cfg), "-o", str(out), *extra]
        if ranks > 1:
            cmd = ["mpirun", "-n", str(ranks), *cmd]
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"

    solver(tmp_path / "straight", 1)
    solver(tmp_path / "cut", 1, "--set", "time.t_end=0.03 s")
    state = json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 3 and state["adapted"]["remesh"] == 1
    solver(tmp_path / "cut", 2, "--restart")
    log = (tmp_path / "cut" / "log.txt").read_text()
    assert "restart from step 3" in log and "(1 -> 2 ranks)" in log
    a, b = _rows(tmp_path / "straight"), _rows(tmp_path / "cut")
    assert len(a) == len(b) == 6
    for key in KEYS:
        va, vb = _col(a, key), _col(b, key)
        assert np.allclose(va, vb, rtol=1e-6, atol=1e-12 * np.abs(va).max()), (key, va, vb)
    sa = json.loads((tmp_path / "straight" / "summary.json").read_text())
    sb = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert sa["dofs"] == sb["dofs"]  # the same adapted mesh at the end


@pytest.mark.mpi
def test_checkpoint_round_trip_of_an_adapted_domain(comm, shared_tmp):
    """An adapted domain written with a checkpoint and read back
    (read_adapted_domain, which the restart uses): the same global cell
    count, cells per grain, facets per tag and orientation sum."""
    from solver.io.checkpoint import CHECKPOINT_DIR, read_adapted_domain, write_checkpoint
    from solver.mesh.adapt import MeshAdapter
    from solver.run import RunContext, build_model

    cfg = _cfg()
    ctx = RunContext(cfg, shared_tmp, comm)
    base = build_model(ctx)
    model = MeshAdapter(ctx, base, lambda d: build_model(ctx, d)).initial(base)
    assert model.domain.info.get("adapted")
    write_checkpoint(model, shared_tmp / CHECKPOINT_DIR, cfg, 0, 0.0, 0.01, {})
    dom = read_adapted_domain(cfg, shared_tmp / CHECKPOINT_DIR, comm)

    def census(d):
        msh = d.mesh
        nf, n = msh.topology.index_map(1).size_local, msh.topology.index_map(2).size_local
        facets = np.bincount(d.facet_tags.values[d.facet_tags.indices < nf], minlength=6)
        grains = np.bincount(d.cell_tags.values[:n], minlength=d.n_grains + 1)
        theta = float(d.theta.x.array[d.theta.function_space.dofmap.list[:n, 0]].sum())
        return (msh.topology.index_map(2).size_global, comm.allreduce(facets).tolist(),
                comm.allreduce(grains).tolist(), round(comm.allreduce(theta), 9))

    written, read = census(model.domain), census(dom)
    assert written == read
    assert written[1][1] >= 8 and written[1][4] > 0  # plating electrode, grain boundary
    assert dom.info["adapted"] and dom.n_grains == model.domain.n_grains


def _two_remeshes_with_a_step_between(comm, shared_tmp):
    """SMALL (LU for the coupled system) remeshed twice, with a solved and
    committed step on the first adapted model (its LU factors exist):
    returns (first, second, adapter), the model the second remesh replaced
    and the new one."""
    from solver.mesh.adapt import MeshAdapter
    from solver.run import RunContext, build_model

    cfg = _cfg(overrides=["solver.petsc.coupled.ksp_type=preonly", "solver.petsc.coupled.pc_type=lu"])
    ctx = RunContext(cfg, shared_tmp, comm)
    base = build_model(ctx)
    ad = MeshAdapter(ctx, base, lambda d: build_model(ctx, d))
    first = ad.adapt(base, 0, band=np.array([[x, 1.2, 0.0] for x in np.linspace(0.0, 4.0, 41)]))
    first.save_state()
    first.solve(0.01, 0.01)
    first.commit()
    second = ad.adapt(first, 1, band=np.array([[x, 2.0, 0.0] for x in np.linspace(0.0, 4.0, 41)]))
    return first, second, ad


@pytest.mark.mpi
def test_a_model_replaced_by_a_remesh_is_freed(comm, shared_tmp):
    """After a remesh the old model, with its forms, solvers and PETSc
    matrices and LU factors, must go: it is held in reference cycles
    (closures over the model), which Python's cyclic collector frees only
    when it happens to run, on allocation counts rather than on the memory
    held in C. release_memory() collects it at once (and, on 2 ranks, has
    petsc4py destroy the PETSc objects it parked). Without it a 250-grain
    run of configs/specimen.yaml grew to 12 GB per rank over 51 remeshes and
    was killed (64 grains, 1 rank: 1.37 GB at step 70, 0.56 GB with it;
    2 ranks, step 86: 1.13 GB per rank, 0.47 GB). Two
    remeshes of SMALL with a solved step in between (LU factors exist): the
    model between them is gone once replaced."""
    import weakref

    from solver.numerics.memory import release_memory

    first, second, _ = _two_remeshes_with_a_step_between(comm, shared_tmp)
    assert second is not first
    gone = weakref.ref(first)
    del first
    release_memory(comm)
    assert gone() is None, "the replaced model is still alive"
    second.save_state()
    second.solve(0.02, 0.01)  # the new model works on its own


@pytest.mark.mpi
def test_a_replaced_model_destroys_its_petsc_objects(comm, shared_tmp):
    """A remesh (MeshAdapter.adapt, through retire(old, new)) destroys every
    PETSc object of the replaced model (matrices, vectors, solvers with their
    LU factors) that the new one does not share. Left to the cyclic collector, on 2 ranks petsc4py parks them
    on their own communicators, DOLFINx's duplicates of the old mesh's,
    which release_memory (COMM_WORLD) never cleans: a 64-grain specimen run
    on 2 ranks ended at 583 MB per rank against ~370 MB after a restart at
    the same DOFs, and at 416 MB with retire. Two remeshes of SMALL with a
    solved step in between: the old model's objects (more than a few) have
    null handles, the new model's none, and the new model solves a step."""
    from solver.numerics.memory import _petsc_objects

    first, second, ad = _two_remeshes_with_a_step_between(comm, shared_tmp)
    old, new = _petsc_objects(first), _petsc_objects(second)
    kinds = sorted({type(o).__name__ for o in old})
    assert {"KSP", "Mat", "Vec"} <= set(kinds), kinds
    shared = {id(o) for o in new} & {id(o) for o in old}
    n = ad.last_retired
    assert n == len(old) - len(shared) and n > 10, (n, len(old), len(shared))
    assert all(o.handle == 0 for o in old if id(o) not in shared)
    assert all(o.handle != 0 for o in new)
    second.save_state()
    second.solve(0.02, 0.01)  # the new model works on its own


@pytest.mark.mpi
def test_the_run_loop_frees_every_model_a_remesh_replaces(comm, shared_tmp, monkeypatch):
    """The time loop must let go of a replaced model before it calls
    release_memory, on both paths: the remesh after an accepted step, and a
    step redone on a new mesh because its trial state left the refined band.
    Until 2026-12-07 the loop held the model of the step's start in a local
    variable through the end-of-step remesh, so one old model (its LU factors
    included) outlived every release. Here the third step's trial state is
    made to escape once (mesh.adapt.max_redo = 1); after every release no
    replaced model may still be alive."""
    import weakref

    import solver.time.loop as loop
    from solver.mesh.adapt import MeshAdapter
    from solver.run import run

    replaced, alive_after_release = [], []
    real_adapt, real_release = MeshAdapter.adapt, loop.release_memory

    def adapt(self, model, step=0, band=None):
        new = real_adapt(self, model, step, band)
        if new is not model:
            replaced.append(weakref.ref(model))
        return new

    def release(c):
        real_release(c)
        alive_after_release.append(sum(r() is not None for r in replaced))

    escapes = iter([False, False, True])  # the same answers on every rank (the real check is collective)
    monkeypatch.setattr(MeshAdapter, "adapt", adapt)
    monkeypatch.setattr(MeshAdapter, "escaped", lambda self, model: next(escapes, False))
    monkeypatch.setattr(loop, "release_memory", release)
    assert run(_cfg(overrides=["mesh.adapt.max_redo=1"]), shared_tmp, comm=comm) == 0
    redone = [int(float(r["redo"])) for r in _rows(shared_tmp)]
    assert sum(redone) == 1 and len(replaced) >= 2, (redone, len(replaced))
    assert len(alive_after_release) == len(replaced) and max(alive_after_release) == 0, alive_after_release


@pytest.mark.mpi
def test_escape_check_is_collective_when_one_rank_has_no_front(comm, shared_tmp):
    """``escaped`` builds the mask of unrefined cells of a new mesh (a
    collective: a function space and an interpolation); a rank without any
    flagged cell must take part too. It skipped it: on 2 ranks the first
    step of macro_fractal on an adapting mesh (max_redo) hung in that
    collective with both ranks at 100% CPU. Here the interface is on rank 0
    only; the answer (True: it lies in cells of the base size) must reach
    every rank, within a watchdog that turns a hang into a failure."""
    import faulthandler

    from solver.mesh.adapt import MeshAdapter
    from solver.run import RunContext, build_model

    ctx = RunContext(_cfg(), shared_tmp, comm)
    base = build_model(ctx)
    ad = MeshAdapter(ctx, base, lambda d: build_model(ctx, d))
    model = ad.adapt(base, 0, band=np.array([[x, 3.5, 0.0] for x in np.linspace(0.0, 4.0, 41)]))
    model.xi.x.array[:] = 0.5 if comm.rank == 0 else 0.0
    faulthandler.dump_traceback_later(120, exit=True)
    try:
        hit = ad.escaped(model)
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert comm.allgather(hit) == [True] * comm.size


@pytest.mark.mpi
def test_a_stop_right_after_a_remesh_ends_interrupted_with_its_fields_written_once(comm, shared_tmp, monkeypatch):
    """A remesh writes the fields of its step on the new mesh (a new
    fields_NNNN.xdmf); a stop (SIGTERM) before the next step then wrote the
    same time again into that file, HDF5 refused (a 1019-grain run stopped
    after 315 steps ended 'failed' instead of 'interrupted'). Here a stop is
    requested as the remesh at step 2 returns: the run ends 'interrupted'
    (exit 130), with t = 0.02 s in fields_0002.xdmf once."""
    from solver.config import load_config
    from solver.mesh.adapt import MeshAdapter
    from solver.run import EXIT_INTERRUPTED, run
    from solver.time import stop

    adapt = MeshAdapter.adapt

    def adapt_then_stop(self, model, step=0, band=None):
        new = adapt(self, model, step, band)
        if step == 2:
            stop._pending_stop.append("SIGTERM")
        return new

    monkeypatch.setattr(MeshAdapter, "adapt", adapt_then_stop)
    raw = json.loads(json.dumps(SMALL))
    raw["output"] = {"every": 10, "checkpoint_every": 10}
    try:
        code = run(load_config(raw=raw), shared_tmp, comm=comm)
    finally:
        stop._pending_stop.clear()
    comm.barrier()
    assert code == EXIT_INTERRUPTED
    summary = json.loads((shared_tmp / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] == 2
    files = sorted(shared_tmp.glob("fields_*.xdmf"))
    text = files[-1].read_text()
    assert len(re.findall(r'<Time Value="0\.02[0-9]*"', text)) == 1, text[:2000]


def test_front_leaving_the_band_triggers_a_remesh(shared_tmp):
    """mesh.adapt.every = 1000 but a front crossing 5 um of a strip: as soon
    as the band reaches a cell of the base size the mesh is rebuilt (measured:
    3 remeshes, steps 41, 109, 155, before the short circuit at step 241), and
    after each one no band cell is unrefined."""
    from solver.config import load_config
    from solver.run import run

    raw = _strip(0.1, every=1000)
    raw["mesh"]["adapt"]["margin"] = "0.5 um"
    raw["time"]["t_end"] = "120 s"
    assert run(load_config(raw=raw), shared_tmp) == 0
    recs = json.loads((shared_tmp / "summary.json").read_text())["adapt"]
    assert len(recs) >= 2 and all(r["step"] % 1000 for r in recs)
    tip = _col(_rows(shared_tmp), "dendrite_tip_m")
    assert tip[-1] - tip[0] > 4e-6  # the front crossed several refined bands


# --------------------------------------------------------------------------
# cracks on an adapting mesh: the flaw tip refined from t = 0, the process zone (H) ahead of a tip
NOTCHED = ROOT / "configs/verification/fracture_notched_crystal.yaml"
NOTCHED_ADAPT = ["mesh.h=1.6 um", "mesh.h_fine=0.4 um", "mesh.refine_band=null", "mesh.adapt.enabled=true",
                 "mesh.adapt.levels=2", "mesh.adapt.h_min=0.4 um", "mesh.adapt.margin=1 um"]


def test_crack_indicator_config_errors():
    from solver.config import ConfigError, validate

    for bad, expect in (({"history_threshold": -1}, "mesh.adapt.history_threshold = -1"),
                        ({"refine_flaws": "maybe"}, "mesh.adapt.refine_flaws"),
                        ({"max_redo": -1}, "mesh.adapt.max_redo = -1"),
                        ({"damage_threshold": 0}, "mesh.adapt.damage_threshold = 0")):
        with pytest.raises(ConfigError) as exc:
            validate({"mesh": {"adapt": bad}})
        lines = [ln for ln in str(exc.value).splitlines() if ln.strip()]
        assert len(lines) == 1 and expect in lines[0], lines
    ad = validate({"mesh": {"adapt": {"history_threshold": 0.5, "refine_flaws": True}}}).mesh.adapt
    assert ad.history_threshold == 0.5 and ad.refine_flaws


def _cell_size_near(model, point, radius):
    """Largest longest-edge [um] of the cells whose centroid lies within ``radius`` of ``point`` (all ranks)."""
    from mpi4py import MPI

    from solver.mesh.adapt import cell_geometry

    msh = model.domain.mesh
    n = msh.topology.index_map(msh.topology.dim).size_local
    cen, _, edge = cell_geometry(msh)
    near = np.linalg.norm(cen[:n, :2] - np.asarray(point), axis=1) < radius
    return msh.comm.allreduce(float(edge[:n][near].max(initial=0.0)), op=MPI.MAX)


@pytest.mark.mpi
def test_flaw_tip_refined_at_t0_and_history_indicator(comm, shared_tmp):
    """refine_flaws: before any load (no damage, no history) the cells at the
    notch tip (10, 10) um are refined to h_min = 0.4 um, 2 levels below the
    base h = 1.6 um; without it the initial mesh is the base. The history
    indicator flags exactly the cells whose H exceeds history_threshold."""
    from solver.config import load_config
    from solver.mesh.adapt import MeshAdapter, indicator_cells
    from solver.run import RunContext, build_model

    sizes = {}
    for flaws in (False, True):
        cfg = load_config(NOTCHED, overrides=NOTCHED_ADAPT + [f"mesh.adapt.refine_flaws={str(flaws).lower()}",
                                                              "mesh.adapt.margin=2 um"])
        ctx = RunContext(cfg, shared_tmp, comm)
        base = build_model(ctx)
        ad = MeshAdapter(ctx, base, lambda d: build_model(ctx, d))
        model = ad.initial(base)
        # 1.5 um ahead of the tip: outside the base's h_fine zone of the flaw, inside the margin (2 um)
        sizes[flaws] = (_cell_size_near(model, (11.5, 10.0), 0.3), model.domain.mesh.topology.index_map(2).size_global)
    assert sizes[False][1] == base.domain.mesh.topology.index_map(2).size_global
    assert sizes[False][0] > 0.8  # the base mesh there: graded from h_fine = 0.4 um at the flaw to h = 1.6 um
    assert sizes[True][0] <= 0.4 * (1 + 1e-9) and sizes[True][1] > sizes[False][1]
    # the history indicator: H = 1 on every third owned cell, threshold 0.5 (damage, xi: none)
    cfg = load_config(NOTCHED, overrides=NOTCHED_ADAPT + ["mesh.adapt.history_threshold=0.5"])
    ctx = RunContext(cfg, shared_tmp, comm)
    model = build_model(ctx)
    fp = model.frac
    n = model.domain.mesh.topology.index_map(2).size_local
    dofs = fp.H.function_space.dofmap.list[:n, 0]
    want = np.arange(0, n, 3)
    fp.H.x.array[:] = 0.0
    fp.H.x.array[dofs[want]] = 1.0
    fp.H.x.scatter_forward()
    assert np.array_equal(indicator_cells(model, cfg.mesh.adapt), want)
    off = load_config(NOTCHED, overrides=NOTCHED_ADAPT).mesh.adapt  # history_threshold 0: off
    assert len(indicator_cells(model, off)) == 0


def _march(cfg, outdir, comm, n_steps):
    """The time loop's step sequence (save, solve, commit, remesh when due) on
    the config's model; with mesh.adapt through MeshAdapter.solve_step, which
    redoes a step whose crack ran out of the refined band. Returns (model,
    adapter or None, redone solves per step)."""
    from solver.mesh.adapt import MeshAdapter
    from solver.run import RunContext, build_model

    ctx = RunContext(cfg, outdir, comm)
    model = build_model(ctx)
    ad = None
    if cfg.mesh.adapt.enabled:
        ad = MeshAdapter(ctx, model, lambda d: build_model(ctx, d))
        model = ad.initial(model)
    t, dt, redo = 0.0, cfg.time.dt, []
    for step in range(n_steps):
        model.save_state()
        if ad is None:
            model.solve(t + dt, dt)
            info = {"redo": 0}
        else:
            model, info = ad.solve_step(model, t + dt, dt, step)
            info = {"redo": ad.last_redo}
        model.commit()
        t += dt
        redo.append(info["redo"])
        if ad is not None and ad.due(step + 1, model):
            model = ad.adapt(model, step + 1)
    return model, ad, redo


def _crack_path(model, tip=(10.0, 10.0), l=1.0):
    """F5's measures from the P1 damage: the angle [deg] of the d > 0.9 points
    more than l ahead of the notch tip (least squares through the tip), their
    extent [um], and where the crack (d > 0.5) reaches farthest in x: (x, the
    mean y of the d > 0.5 points there) [um]."""
    fp = model.frac
    n = fp.V.dofmap.index_map.size_local
    x = fp.V.tabulate_dof_coordinates()[:n, :2]
    d = fp.d.x.array[:n]
    rel = np.concatenate(fp.comm.allgather(x[(d > 0.9) & (x[:, 0] > tip[0] + l)] - np.asarray(tip)))
    ang = np.degrees(np.arctan((rel[:, 0] * rel[:, 1]).sum() / (rel[:, 0] ** 2).sum())) if len(rel) >= 5 else np.nan
    far = np.concatenate(fp.comm.allgather(x[d > 0.5]))
    edge = far[far[:, 0] > far[:, 0].max() - 1e-6]  # the farthest d > 0.5 points: the centre of the band there
    return ang, (rel[:, 0].max() if len(rel) else 0.0), np.array([edge[0, 0], edge[:, 1].mean()])


@pytest.mark.mpi
def test_F5_crack_path_on_an_adapting_mesh_matches_the_uniform_fine_mesh(comm, shared_tmp, record_validation):
    """F5 (configs/verification/fracture_notched_crystal.yaml: planes at 30 deg,
    sigma_cp = sigma_b/10, beta_c = 10, top pulled) on an adapting mesh: base
    h = 1.6 um (0.4 um at the crack faces), 2 levels to h_min = 0.4 um around
    the flaw from t = 0, the damage (d > 0.3) and the history (H > 1e-3, the
    stress above the strength); the uniform fine mesh: h = 0.4 um over the
    12 x 12 um band ahead of the notch. The crack runs out through the
    specimen within the first step (unstable at the held load), through
    cells of the base size: the step is redone on the mesh refined towards
    that trial crack (max_redo). The crack angle is F5's 30 +/- 10 deg, and
    the crack reaches the far edge within one h_min of the uniform mesh's
    crack. (Measured: 27.03 vs 27.16 deg; crack centre at the far edge
    y = 15.00 vs 15.24 um, 1 redo in step 1; without the redo 23.50 deg and
    14.62 um; 6354 vs 4398 DOFs: the uniform band is the graded mesh of the
    config, not the whole specimen.)"""
    from solver.config import load_config

    common = ["mesh.h=2 um", "loading.mechanical.value.points=[[0, 0], [1, 0.0022e-6], [3, 0.0024e-6]]",
              "time.t_end=3 s", "solver.stagger.fracture_iterations=100"]
    uni, _, _ = _march(load_config(NOTCHED, overrides=common + ["mesh.h_fine=0.4 um"]), shared_tmp / "uniform", comm, 2)
    adaptive = NOTCHED_ADAPT + ["mesh.adapt.every=1", "mesh.adapt.refine_flaws=true", "mesh.adapt.damage_threshold=0.3",
                                "mesh.adapt.history_threshold=1e-3", "mesh.adapt.max_redo=3"]
    ada, ad, redo = _march(load_config(NOTCHED, overrides=common + adaptive), shared_tmp / "adaptive", comm, 2)
    (a_u, ext_u, tip_u), (a_a, ext_a, tip_a) = _crack_path(uni), _crack_path(ada)
    if comm.rank == 0:
        print(f"F5 adaptive: angle {a_a:.2f} vs {a_u:.2f} deg, edge at {tip_a} vs {tip_u} um, redo {redo}, "
              f"DOFs {ada.dofs()} vs {uni.dofs()}")
    record_validation("F5 crack angle on an adapting mesh [deg] (uniform fine mesh as reference)", a_u, a_a,
                      "F5's 10 deg", abs(a_a - 30.0) < 10.0)
    record_validation("F5 crack position at the far edge, adapting vs uniform fine mesh [um]", tip_u[1], tip_a[1],
                      "one h_min = 0.4 um", abs(tip_a[1] - tip_u[1]) <= 0.4)
    assert ext_u > 4.0 and ext_a > 4.0  # F5: at least 4 l of growth
    assert abs(a_a - 30.0) < 10.0 and abs(a_u - 30.0) < 10.0
    assert abs(tip_a[0] - tip_u[0]) <= 0.4 and abs(tip_a[1] - tip_u[1]) <= 0.4
    assert redo[0] >= 1  # the crack ran out of the t = 0 mesh: the step was redone


@pytest.mark.mpi
def test_the_time_loop_redoes_a_step_whose_crack_left_the_band(comm, shared_tmp):
    """The same F5 adaptive march through `solver run` (solver/time/loop.py):
    step 1 is redone on the mesh refined towards its trial crack (scalars.csv
    column ``redo``), the fields of that step go to their own file on the new
    mesh, and the crack written there runs along the planes (30 +/- 10 deg,
    F5's tolerance) over at least 4 l, as in the march above."""
    from solver.config import load_config
    from solver.io.series import RunSeries
    from solver.run import run

    over = ["mesh.h=2 um", "loading.mechanical.value.points=[[0, 0], [1, 0.0022e-6], [3, 0.0024e-6]]",
            "time.t_end=3 s", "time.max_steps=2", "solver.stagger.fracture_iterations=100", "output.every=1",
            "mesh.adapt.every=1", "mesh.adapt.refine_flaws=true", "mesh.adapt.damage_threshold=0.3",
            "mesh.adapt.history_threshold=1e-3", "mesh.adapt.max_redo=3"]
    assert run(load_config(NOTCHED, overrides=NOTCHED_ADAPT + over), shared_tmp, comm=comm) == 0
    rows = _rows(shared_tmp)
    assert len(rows) == 2 and int(rows[0]["redo"]) >= 1
    if comm.rank == 0:
        with RunSeries(shared_tmp) as series:
            last = series.frame(len(series) - 1)
            assert len({len(series.frame(k).points) for k in range(len(series))}) >= 2  # frames on several meshes
        x, d = last.points[:, :2], np.asarray(last.point_data["damage"]).ravel()
        rel = x[(d > 0.9) & (x[:, 0] > 11.0)] - np.array([10.0, 10.0])  # F5's measure: > l ahead of the tip
        angle = np.degrees(np.arctan((rel[:, 0] * rel[:, 1]).sum() / (rel[:, 0] ** 2).sum()))
        assert len(rel) >= 5 and rel[:, 0].max() > 4.0
        assert abs(angle - 30.0) < 10.0


# --------------------------------------------------------------------------
# the pressurised flaw (Liu et al. 2020 eq. 4, energy model) on an adapting mesh
FLAW = ROOT / "configs/verification/fracture_pressurised_flaw.yaml"
# the graded mesh's load path of tests/test_fracture.py::test_pressurised_flaw_follows_lefm, to 480 MPa
FLAW_LOAD = ["loading.mechanical.value.points=[[0, 0], [1, 360e6], [2, 460e6], [4, 480e6]]", "time.t_end=4 s",
             "output.every=1000", "output.checkpoint_every=1000"]
# remesh every step around the crack (d > 0.3) and the slot (refine_flaws), one level, no cell below 0.15 um:
# the config's 0.1 um band ahead of the flaw tip is the crack's mesh, adaptivity refines around it
FLAW_ADAPT = ["mesh.adapt.enabled=true", "mesh.adapt.levels=1", "mesh.adapt.every=1", "mesh.adapt.margin=1 um",
              "mesh.adapt.h_min=0.15 um", "mesh.adapt.refine_flaws=true", "mesh.adapt.damage_threshold=0.3"]


def _flaw_tips(overrides, outdir, comm):
    """Run the pressurised flaw with ``overrides``: [(p [Pa], crack tip [m])] per step, summary.json."""
    from solver.config import load_config, schedule_value
    from solver.run import run

    cfg = load_config(FLAW, overrides=FLAW_LOAD + list(overrides))
    assert run(cfg, outdir, comm=comm) == 0
    rows = _rows(outdir)
    tips = [(schedule_value(cfg.loading.mechanical.value, float(r["time_s"])), float(r["crack_tip_m"])) for r in rows]
    return tips, json.loads((outdir / "summary.json").read_text())


@pytest.mark.mpi
def test_pressurised_flaw_on_an_adapting_mesh_follows_lefm_and_the_graded_mesh(comm, shared_tmp, record_validation):
    """Liu et al. eq. 4 (configs/verification/fracture_pressurised_flaw.yaml:
    a 10 um slot, faces pressurised 360 -> 460 -> 480 MPa, energy model, l =
    0.5 um, h = 0.1 um in the band ahead of the tip) on a mesh adapted every
    step around the crack (d > 0.3) and the slot, one level, no cell below
    0.15 um: the crack runs in the config's graded 0.1 um band, and every
    step's state (u, d, H) moves through a remesh (H: max over the old
    cells in a new cell).

    * LEFM as in the graded-mesh test: once the crack has grown l..3l the
      applied pressure is the partially loaded crack's LEFM pressure at the
      measured tip within 5% (regularisation O(l/a) = 5%, tip located to h:
      < 1%), K = K_IC sqrt(1 + h/(2l)).
    * The graded mesh without adaptivity: the tip within one h = 0.1 um at
      every step (the nodes of the d > 0.5 set are h apart).

    The remesh transfers do not move the crack: measured tips 10.14, 10.70,
    10.87 um on both meshes (the same to 1e-3 um). With the crack in cells
    made by refinement (base 0.2 um, 1 level, the rest as here) this fails:
    the tip 0.7..1.2 um beyond the graded mesh's, the pressure 8..10% below
    LEFM at it. The graded check itself is not converged in h (a gmsh 0.05
    um band: 0.82 of the LEFM pressure), so the reference here is the same
    graded band, not a finer mesh (docs/user/adaptivity.md)."""
    a, l, h = 10e-6, 0.5e-6, 0.1e-6
    graded, _ = _flaw_tips([], shared_tmp / "graded", comm)
    adaptive, summary = _flaw_tips(FLAW_ADAPT, shared_tmp / "adaptive", comm)
    from test_fracture import lefm_flaw_pressure

    K = 2e6 * np.sqrt(1 + h / (2 * l))
    if comm.rank == 0:
        print("tips [um] graded / adaptive:", [(round(p / 1e6), round(tg * 1e6, 3), round(ta * 1e6, 3))
                                             for (p, tg), (_, ta) in zip(graded, adaptive)])
    remeshes = len(summary.get("adapt", []))
    growing = [(p, tip) for p, tip in adaptive if np.isfinite(tip) and l <= tip - a <= 3 * l]
    for p, tip in growing:
        p_lefm = lefm_flaw_pressure(K, a, tip)
        record_validation("Liu eq. 4 on an adapting mesh: applied pressure vs LEFM at the tip [Pa]", p_lefm, p,
                          "5% rel", abs(p / p_lefm - 1) < 0.05)
    both = [(tg, ta) for (_, tg), (_, ta) in zip(graded, adaptive) if np.isfinite(tg) or np.isfinite(ta)]
    for tg, ta in both:
        record_validation("pressurised flaw: crack tip, adapting vs graded mesh [m]", tg, ta, "one h = 0.1 um",
                          bool(abs(ta - tg) <= h))
    assert remeshes >= 1  # the mesh did adapt
    assert len(growing) >= 2, adaptive
    for p, tip in growing:
        assert abs(p / lefm_flaw_pressure(K, a, tip) - 1) < 0.05, (p, tip)
    assert len(both) == len(graded) - 1  # no crack (d > 0.5 beyond the slot) at 360 MPa only
    for tg, ta in both:
        assert abs(ta - tg) <= h, (tg, ta)
