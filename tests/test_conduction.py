"""Ionic conduction div(sigma grad phi) = 0 with per-grain anisotropic sigma,
and the run outputs of the conduction slice (docs/user/outputs.md)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pytestmark = pytest.mark.mpi


def _layered_domain(comm, angles, n_per_layer=4, width_um=3.0, height_um=8.0):
    """Rectangle of len(angles) grains stacked along y (interfaces on mesh lines)."""
    from dolfinx import mesh as dmesh

    from solver.config import validate
    from solver.mesh.domain import dg0_from_cell_values, num_local_cells, rectangle_domain

    ny = n_per_layer * len(angles)
    cfg = validate({"mesh": {"width": width_um * 1e-6, "height": height_um * 1e-6, "structured": ny}})
    dom = rectangle_domain(cfg, comm)
    ncell = num_local_cells(dom.mesh)
    mid = dmesh.compute_midpoints(dom.mesh, 2, np.arange(ncell, dtype=np.int32))
    layer = np.minimum((mid[:, 1] / (height_um / len(angles))).astype(int), len(angles) - 1)
    dom.theta = dg0_from_cell_values(dom.mesh, np.asarray(angles)[layer], "orientation")
    return dom


@pytest.mark.parametrize("angles", [[0.0], [np.pi / 2], [0.0, np.pi / 2], [0.0, np.pi / 2, 0.0, np.pi / 2]])
def test_series_layers_match_analytic_current(comm, angles, record_validation):
    """Layers along y conduct in series: I = V W / sum(t_k / sigma_yy,k),
    sigma_yy = sigma_par sin^2(theta) + sigma_perp cos^2(theta). P1 is exact
    for this piecewise-linear solution, so only the solver tolerance remains."""
    from solver.physics.conduction import ConductionProblem, series_current

    s_par, s_perp, V = 1.0, 0.01, 0.1
    dom = _layered_domain(comm, angles)
    prob = ConductionProblem(dom, s_par, s_perp)
    prob.solve_voltage(V)
    sig_y = [s_par * np.sin(a) ** 2 + s_perp * np.cos(a) ** 2 for a in angles]
    t = [dom.height / len(angles)] * len(angles)
    expected = series_current(sig_y, t, V, dom.width)
    record_validation(f"conduction: series layers at {np.degrees(angles).round().tolist()} deg, current [A/m]", expected, prob.current_per_depth(),
                      "1e-7 rel", abs(prob.current_per_depth() / expected - 1) <= 1e-7)
    assert prob.current_per_depth() == pytest.approx(expected, rel=1e-7)


def _rotated_strip_current(comm, width_um, theta=np.pi / 4, s_par=1.0, s_perp=0.01, V=0.1):
    from solver.physics.conduction import ConductionProblem

    dom = _layered_domain(comm, [theta], n_per_layer=8, width_um=width_um, height_um=1.0)
    prob = ConductionProblem(dom, s_par, s_perp)
    prob.solve_voltage(V)
    syy = s_par * np.sin(theta) ** 2 + s_perp * np.cos(theta) ** 2
    sxx = s_par * np.cos(theta) ** 2 + s_perp * np.sin(theta) ** 2
    sxy = (s_par - s_perp) * np.sin(theta) * np.cos(theta)
    upper = syy * V / dom.height * dom.width  # Dirichlet principle: phi = V y/H is admissible
    lower = (syy - sxy**2 / sxx) * V / dom.height * dom.width  # Thomson principle: J = (0, J_y)
    return prob.current_per_depth(), lower, upper


def test_rotated_crystal_obeys_variational_bounds_and_edge_scaling(comm):
    """A crystal at 45 deg between electrodes, insulated sides. The current
    lies between the complementary-energy bound (J_x = 0 everywhere) and the
    potential-energy bound (phi linear in y); the wide-strip limit is the
    upper one, approached with an edge deficit proportional to H/W."""
    i20, lo20, up20 = _rotated_strip_current(comm, 20.0)
    i40, lo40, up40 = _rotated_strip_current(comm, 40.0)
    assert lo20 < i20 < up20 and lo40 < i40 < up40
    deficit20, deficit40 = 1 - i20 / up20, 1 - i40 / up40
    assert deficit40 == pytest.approx(deficit20 / 2, rel=0.05)


def test_serial_and_parallel_agree(comm):
    from mpi4py import MPI

    from solver.physics.conduction import ConductionProblem
    from solver.config import validate
    from solver.mesh.domain import rectangle_domain

    cfg = validate({"mesh": {"width": "12 um", "height": "8 um", "h": "0.5 um", "grains": 6, "seed": 2}})
    currents = []
    for c in (MPI.COMM_SELF, comm):
        dom = rectangle_domain(cfg, c)
        prob = ConductionProblem(dom, 1.0, 0.01)
        prob.solve_voltage(0.05)
        currents.append(prob.current_per_depth())
    assert currents[1] == pytest.approx(currents[0], rel=1e-7)


def test_run_writes_interface_outputs(comm, shared_tmp):
    import meshio

    from solver.config import load_config
    from solver.io.output import SCALAR_COLUMNS
    from solver.run import run

    cfg = load_config("configs/verification/conduction_polycrystal.yaml", ["mesh.h=1 um", "time.t_end=3 s"])
    code = run(cfg, shared_tmp, comm=comm)
    assert code == 0
    comm.barrier()
    for name in ("config.resolved.yaml", "fields.xdmf", "fields.h5", "scalars.csv", "summary.json", "log.txt"):
        assert (shared_tmp / name).exists(), name
    summary = json.loads((shared_tmp / "summary.json").read_text())
    for key in ("status", "steps", "final_time_s", "ranks", "dofs", "wall_time_s", "wall_split_s", "versions", "config_hash"):
        assert key in summary
    assert summary["status"] == "completed" and summary["ranks"] == comm.size and summary["steps"] == 3
    with open(shared_tmp / "scalars.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert set(SCALAR_COLUMNS) <= set(rows[0])
    if comm.rank == 0:
        with meshio.xdmf.TimeSeriesReader(str(shared_tmp / "fields.xdmf")) as reader:
            points, cells = reader.read_points_cells()
            assert points[:, 1].max() == pytest.approx(20.0)  # micrometres
            t, point_data, cell_data = reader.read_data(reader.num_steps - 1)
            assert t == pytest.approx(3.0)
            assert "potential" in point_data
            phi = point_data["potential"].ravel()
            top, bottom = np.isclose(points[:, 1], 20.0), np.isclose(points[:, 1], 0.0)
            assert np.allclose(phi[top], 0.03, rtol=1e-12) and np.allclose(phi[bottom], 0.0)  # 3/10 of the ramp
            assert "grain_id" in cell_data and "orientation" in cell_data


def test_run_stopped_at_max_steps_ends_with_status_max_steps(comm, shared_tmp, capsys):
    """time.max_steps reached before t_end: exit 0, status 'max_steps' in
    summary.json and in the log (not 'completed'); the model is a FieldProblem
    driven by the one time loop."""
    from solver.config import load_config
    from solver.coupling.protocol import Model
    from solver.mesh import build_domain
    from solver.physics.conduction import ConductionProblem
    from solver.run import run

    cfg = load_config("configs/verification/conduction_polycrystal.yaml", ["mesh.h=1 um", "time.max_steps=2"])
    assert isinstance(ConductionProblem.from_config(build_domain(cfg, comm), cfg), Model)
    assert run(cfg, shared_tmp, comm=comm) == 0
    comm.barrier()
    summary = json.loads((shared_tmp / "summary.json").read_text())
    assert summary["status"] == "max_steps" and summary["steps"] == 2
    assert summary["final_time_s"] == pytest.approx(2.0) and summary["final_time_s"] < cfg.time.t_end
    log = (shared_tmp / "log.txt").read_text()
    assert "time.max_steps = 2" in log and "status max_steps" in log
    if comm.rank == 0:
        progress = [line for line in capsys.readouterr().out.splitlines() if " step " in line and " eta " in line]
        assert len(progress) == 2 and all(len(line) <= 100 for line in progress)


def test_progress_line_fits_100_columns_and_log_txt_has_all_of_it(tmp_path, capsys):
    from mpi4py import MPI

    from solver.io.log import Progress, setup_logging

    parts = ["i 1.234e+01 A/m^2", "tip " + "7" * 40, "ksp " + "9" * 40]
    setup_logging(tmp_path / "log.txt", MPI.COMM_SELF)
    Progress(10.0).step(3, 1.0, 0.1, parts)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and len(out[0]) <= 100 and "step     3" in out[0] and "i 1.234e+01 A/m^2" in out[0]
    assert "9" * 40 not in out[0]  # the part that does not fit stays off the terminal ...
    text = (tmp_path / "log.txt").read_text()
    assert all(p in text for p in parts)  # ... and is in log.txt, whole
