"""Config schema: units, overrides, error messages, docs. No DOLFINx needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from solver.config import ConfigError, apply_overrides, load_config, schedule_value, validate
from solver.config.units import UnitError, to_si

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "text, dim, si",
    [
        ("300 MPa", "pressure", 3.0e8),
        ("1 mA/cm^2", "current_density", 10.0),
        ("20 um", "length", 2.0e-5),
        ("23.7 cm^3/mol", "molar_volume", 2.37e-5),
        ("100 mV", "voltage", 0.1),
        ("2 MPa*m^0.5", "toughness", 2.0e6),
        ("180 deg", "angle", 3.141592653589793),
        ("10 min", "time", 600.0),
        (42, "pressure", 42.0),
    ],
)
def test_units_convert_to_si(text, dim, si):
    assert to_si(text, dim) == pytest.approx(si, rel=1e-12)


@pytest.mark.parametrize("text, dim", [("3 kg", "pressure"), ("fast", "length"), (True, "length"), ("nan m", "length")])
def test_units_reject_wrong_dimension(text, dim):
    with pytest.raises(UnitError):
        to_si(text, dim)


def test_defaults_are_the_model_md_parameter_set():
    cfg = validate({})
    assert cfg.materials.electrolyte.youngs_modulus == 200e9
    assert cfg.materials.sodium.molar_volume == 23.7e-6
    assert cfg.electrochemistry.exchange_current_density == 26.0
    assert cfg.fracture.strength_plane == cfg.fracture.strength_bulk / 10
    assert cfg.mechanics.eigenstrain == 0.2


def test_overrides_parse_yaml_and_units():
    cfg = load_config(raw={}, overrides=["mesh.h=0.5 um", "mesh.grains=7", "fracture.model=energy",
                                          'electrochemistry.exchange_current_density="30 A/m^2"'])
    assert cfg.mesh.h == pytest.approx(5e-7)
    assert cfg.mesh.grains == 7
    assert cfg.fracture.model == "energy"
    assert cfg.electrochemistry.exchange_current_density == 30.0


def test_override_into_value_is_an_error():
    with pytest.raises(ConfigError, match="mesh.h.*is a value"):
        apply_overrides({"mesh": {"h": 1e-6}}, ["mesh.h.x=3"])


def test_schedule_is_piecewise_linear():
    cfg = validate({"loading": {"electrical": {"voltage": {"points": [["0 s", 0.0], ["10 s", 0.1], ["20 s", 0.1]]}}}})
    v = cfg.loading.electrical.voltage
    assert schedule_value(v, 5.0) == pytest.approx(0.05)
    assert schedule_value(v, 15.0) == pytest.approx(0.1)
    assert schedule_value(v, 99.0) == pytest.approx(0.1)
    assert schedule_value(v, -1.0) == pytest.approx(0.0)


# (config, the key the message must name, a fragment of what was expected)
BAD = [
    ({"mesh": {"grians": 10}}, "mesh.grians", "did you mean 'grains'"),
    ({"mehs": {}}, "mehs", "did you mean 'mesh'"),
    ({"mesh": {"h": "-1 um"}}, "mesh.h", "greater than 0"),
    ({"mesh": {"h": "1 MPa"}}, "mesh.h", "expected a length"),
    ({"mesh": {"kind": "hexagon"}}, "mesh.kind", "'voronoi'"),
    ({"mesh": {"kind": "voronoi"}}, "mesh", "needs 'grains', 'grain_size' or 'seeds_file'"),
    ({"fracture": {"strength_bulk": "300 kg"}}, "fracture.strength_bulk", "expected a pressure"),
    ({"fracture": {"model": "griffith"}}, "fracture.model", "'damaged_domain'"),
    ({"materials": {"electrolyte": {"poisson_ratio": 0.7}}}, "materials.electrolyte.poisson_ratio", "less than 0.5"),
    ({"loading": {"electrical": {"control": "galvanostatic"}}}, "loading.electrical", "needs 'current_density'"),
    ({"loading": {"electrical": {"voltage": {"points": [[10, 0], [1, 0.1]]}}}}, "loading.electrical.voltage", "strictly increasing"),
    ({"time": {"dt": "1 ms", "dt_min": "1 s"}}, "time", "dt_min"),
    ({"time": {"t_end": "soon"}}, "time.t_end", "expected a time"),
    ({"solver": {"petsc": {"mech": {"ksp_type": "cg"}}}}, "solver.petsc.mech", "'mechanics'"),
    ({"solver": {"coupling": "staggered", "stagger": {"fracture_coupling": "lagged"}}}, "solver",
     "option of the monolithic scheme"),
    ({"mesh": {"flaws": [{"type": "notch", "length": "2 um"}]}}, "mesh.flaws[0].width", "missing"),
    ({"electrochemistry": {"initial_na": [{"type": "circle", "radius": "1 um"}]}}, "electrochemistry.initial_na[0]", "needs center"),
    ({"electrochemistry": {"anisotropy_strength": 0.2}}, "electrochemistry", "expected anisotropy_strength < 0.1429"),
    ({"electrochemistry": {"anisotropy_strength": 0.05, "anti_curvature": True}}, "electrochemistry", "one of the two"),
    ({"mesh": {"dim": 3}, "electrochemistry": {"anisotropy_strength": 0.05}}, "electrochemistry.anisotropy_strength", "expected 0 in 3D"),
]


@pytest.mark.parametrize("omega", [3, 4, 6])
def test_anisotropy_limit_is_where_the_stiffness_of_a_sqrt_kappa_energy_vanishes(omega):
    """gamma ~ sqrt(1 + delta_a cos(omega theta)) has gamma + gamma'' = (1 +
    delta_a - delta_a omega^2 / 2) / sqrt(1 + delta_a) at theta = 0, its
    minimum: zero at delta_a = 1 / (omega^2 / 2 - 1). omega = 1, 2 never reach it."""
    from solver.config import max_anisotropy_strength

    assert max_anisotropy_strength(omega) == pytest.approx(1.0 / (omega**2 / 2.0 - 1.0), rel=1e-6)
    assert max_anisotropy_strength(1) == max_anisotropy_strength(2) == 1.0


@pytest.mark.parametrize("raw, key, expected", BAD)
def test_bad_config_names_key_and_expectation(raw, key, expected):
    with pytest.raises(ConfigError) as info:
        validate(raw)
    problems = info.value.problems
    assert len(problems) == 1, problems
    assert problems[0].startswith(key), problems
    assert expected in problems[0], problems


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        validate({"mesh": {"h": -1, "grians": 3}, "time": {"dt": 0}})
    assert len(info.value.problems) == 3


def test_check_cli_exit_code_and_one_line_per_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"mesh": {"grians": 3, "h": "2 kg"}}))
    res = subprocess.run([sys.executable, "-m", "solver", "check", str(bad)], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("config error: mesh.") for line in lines), res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize("text, fragment", [("mesh: [1, 2", "not valid YAML at line"), ("- 1\n- 2\n", "expected a mapping")])
def test_check_cli_bad_yaml(tmp_path, text, fragment):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    res = subprocess.run([sys.executable, "-m", "solver", "check", str(bad)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 1 and fragment in res.stderr and "Traceback" not in res.stderr


def test_check_cli_missing_file_and_bad_set():
    res = subprocess.run([sys.executable, "-m", "solver", "check", "nope.yaml"], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 1 and "not found" in res.stderr
    res = subprocess.run([sys.executable, "-m", "solver", "check", "configs/demo.yaml", "--set", "mesh.h"],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 1 and "expected key.path=value" in res.stderr


def test_check_imports_no_dolfinx():
    """`check` stays light: never DOLFINx; petsc4py only for a config with
    solver.petsc options (checked against PETSc's own option database)."""
    for config, petsc in (("configs/macro_layer.yaml", False), ("configs/demo.yaml", True)):
        code = ("import sys; from solver.cli import main; rc = main(['check', %r]); "
                "assert 'dolfinx' not in sys.modules, 'heavy import'; "
                "assert ('petsc4py' in sys.modules) == %r, 'petsc4py'; sys.exit(rc)" % (config, petsc))
        res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
        assert res.returncode == 0, (config, res.stderr)


def test_all_shipped_configs_are_valid():
    configs = sorted((ROOT / "configs").rglob("*.yaml"))
    assert configs
    from solver.preflight import cross_check

    for path in configs:
        assert cross_check(load_config(path)) == [], path  # includes the mesh geometry checks


def test_config_reference_is_up_to_date():
    from solver.docs import render

    assert (ROOT / "docs" / "config.md").read_text() == render(), "docs/config.md is stale: run `make docs`"


def test_physics_hash_ignores_output_and_time():
    a = validate({"output": {"every": 3}, "time": {"t_end": 5}})
    b = validate({})
    c = validate({"fracture": {"length_scale": "0.3 um"}})
    assert a.physics_hash() == b.physics_hash() != c.physics_hash()


def test_physics_changes_names_the_changed_keys():
    old = validate({}).physics_dict()
    new = validate({"fracture": {"length_scale": "0.3 um"}})
    assert new.physics_changes(old) == ["fracture.length_scale: 5e-07 -> 3e-07"]
    assert validate({"time": {"t_end": 9}}).physics_changes(old) == []


def test_physics_changes_accepts_fields_added_since_at_their_default():
    """A checkpoint written before a field existed: read with today's default,
    the physics is the same; a non-default value of the new field is a change."""
    old = validate({}).physics_dict()
    del old["electrochemistry"]["plating_electrode"]
    del old["electrochemistry"]["anode_exchange_current_density"]
    assert validate({}).physics_changes(old) == []
    changed = validate({"electrochemistry": {"plating_electrode": "reactive"}}).physics_changes(old)
    assert changed == ["electrochemistry.plating_electrode: 'blocking' -> 'reactive'"]


def test_physics_changes_reports_an_unreadable_checkpoint_config():
    old = validate({}).physics_dict()
    old["fracture"]["removed_option"] = 1.0
    (msg,) = validate({}).physics_changes(old)
    assert "not readable by this version" in msg


def test_schedule_values_may_carry_units():
    cfg = validate({"loading": {"electrical": {"voltage": {"points": [["0 s", "20 mV"], ["1 min", "0.2 V"]]}},
                                "mechanical": {"type": "displacement", "value": "0.1 um"}}})
    assert cfg.loading.electrical.voltage.points == [(0.0, pytest.approx(0.02)), (60.0, pytest.approx(0.2))]
    assert cfg.loading.mechanical.value == pytest.approx(1e-7)
    with pytest.raises(ConfigError, match=r"voltage.points\[1\]\[1\] = '0.2 A': expected a voltage"):
        validate({"loading": {"electrical": {"voltage": {"points": [[0, 0.0], [1, "0.2 A"]]}}}})


def test_preflight_warns_about_the_deposit_pressure_of_na_filled_flaws():
    """A Na-filled flaw under the Griffith (energy) model with the docs/model.md
    coupling (mean pressure, Voigt mixing) gets a warning naming the three
    settings; with them, none; Reuss with P1 displacements gets the locking
    warning; the default example (stress model) gets neither."""
    from solver.preflight import warnings

    flaw = {"mesh": {"flaws": [{"type": "notch", "center": ["5 um", "0 um"], "length": "3 um", "width": "0.5 um",
                                "filled_with_na": True}]}, "fracture": {"model": "energy"}}
    w = [m for m in warnings(validate(flaw)) if "Na-filled" in m]
    assert len(w) == 1 and all(k in w[0] for k in ("'mean'", "'voigt'", "displacement_degree = 2"))
    good = validate({**flaw, "electrochemistry": {"coupling_pressure": "normal"},
                     "mechanics": {"stiffness_mixing": "reuss", "displacement_degree": 2}})
    assert not [m for m in warnings(good) if "Na-filled" in m or "lock" in m]
    p1 = validate({**flaw, "electrochemistry": {"coupling_pressure": "normal"}, "mechanics": {"stiffness_mixing": "reuss"}})
    assert [m for m in warnings(p1) if "lock" in m]
    assert not [m for m in warnings(validate({})) if "Na-filled" in m]
    demo = load_config(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml")
    assert not [m for m in warnings(demo) if "Na-filled" in m or "lock" in m]


def test_preflight_warns_about_a_lagging_interface_but_not_on_the_shipped_configs():
    """L_sigma W / (L_eta |B|) < 0.5 (test_electrochemistry measures the lag)
    gets a warning naming electrochemistry.interface_mobility and the ratio;
    with a schedule the peak voltage counts; no shipped config warns."""
    from solver.preflight import interface_relaxation_ratio, warnings

    slow = {"electrochemistry": {"interface_mobility": 1e-10}, "loading": {"electrical": {"voltage": 0.15}}}
    (msg,) = [m for m in warnings(validate(slow)) if "interface_mobility" in m]
    r = interface_relaxation_ratio(validate(slow))
    assert "1e-10" in msg and f"{r:.3g}" in msg and r < 0.5
    ramp = {**slow, "loading": {"electrical": {"voltage": {"points": [[0, 0.0], [10, 0.15]]}}}}
    assert interface_relaxation_ratio(validate(ramp)) == pytest.approx(r)
    for path in sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml")):
        assert not [m for m in warnings(load_config(path)) if "interface_mobility" in m], path.name


def test_nernst_einstein_ratio_of_the_transport():
    """D / D_NE with D_NE = sigma RT / (F^2 c0): docs/model.md's defaults (1 / 0.01
    S/m, 3e-11 / 3e-13 m^2/s, c0 = 9e3 mol/m^3, 298 K: D_NE = 2.965e-11 x
    sigma) are Nernst-Einstein consistent, and `solver check` says so; a
    10 x lower D reads 0.1 and is called diffusion-limited."""
    from solver.preflight import describe, nernst_einstein_ratio

    d_ne = 8.314462618 * 298.0 / (96485.33212**2 * 9.0e3)
    par, perp = nernst_einstein_ratio(validate({}))
    assert par == pytest.approx(3e-11 / d_ne, rel=1e-9) and perp == pytest.approx(3e-13 / (0.01 * d_ne), rel=1e-9)
    assert 1.0 < par < 1.02
    assert any("Nernst-Einstein: c~ stays uniform" in line for line in describe(validate({})))
    low = validate({"materials": {"electrolyte": {"diffusivity_parallel": 3e-12, "diffusivity_perpendicular": 3e-14}}})
    assert nernst_einstein_ratio(low)[1] == pytest.approx(0.1 * perp, rel=1e-12)
    assert any("diffusion-limited" in line for line in describe(low))


def test_preflight_warns_about_a_cascade_that_cannot_run():
    """cells_per_iteration under another fracture model is ignored, and with
    one fracture iteration per stage the cascade depends on dt: both warn,
    naming the keys; with fracture_iterations > 1, no warning."""
    from solver.preflight import warnings

    casc = {"fracture": {"model": "damaged_domain", "damaged_domain": {"cells_per_iteration": 2}}}
    (msg,) = [m for m in warnings(validate(casc)) if "cells_per_iteration" in m]
    assert "= 2" in msg and "solver.stagger.fracture_iterations" in msg
    ok = {**casc, "solver": {"stagger": {"fracture_iterations": 300}}}
    assert not [m for m in warnings(validate(ok)) if "cells_per_iteration" in m]
    other = {"fracture": {"model": "stress", "damaged_domain": {"cells_per_iteration": 2}}}
    (msg,) = [m for m in warnings(validate(other)) if "cells_per_iteration" in m]
    assert "'stress'" in msg and "ignored" in msg


def test_cross_check_refuses_a_current_that_no_interface_may_carry():
    """deposition_restriction = 'damage' (chi = d) under galvanostatic
    control: nothing is damaged at t = 0, so the imposed current has nowhere
    to go; the check names both keys and the alternatives before any solve."""
    from solver.preflight import cross_check

    galv = {"loading": {"electrical": {"control": "galvanostatic", "current_density": "1 mA/cm^2"}}}
    bad = validate({**galv, "electrochemistry": {"deposition_restriction": "damage"}})
    (msg,) = [p for p in cross_check(bad) if "deposition_restriction" in p]
    assert "'damage'" in msg and "'galvanostatic'" in msg and "intact_deposition > 0" in msg
    for ok in (validate({**galv, "electrochemistry": {"deposition_restriction": "metal"}}),
               validate({**galv, "electrochemistry": {"deposition_restriction": "damage", "intact_deposition": 0.1}}),
               validate({"electrochemistry": {"deposition_restriction": "damage"}})):
        assert not [p for p in cross_check(ok) if "deposition_restriction" in p]


@pytest.mark.parametrize("grains", [64, 250, 1000])
def test_the_specimen_sweep_scales_the_specimen_to_n_grains_at_its_grain_size(grains):
    """benchmarks/specimen_sweep.py (issue 21 item 5): configs/specimen.yaml
    at N grains of its 10 um grain size, aspect 2 : 1, flaws at the same
    fractions of the width and their own depth. The mesh generator's grain
    count from that box (A / (pi d^2 / 4), rounded) is N."""
    import importlib.util

    import yaml

    from meshes.voronoi import grains_from_size
    from solver.config import load_config

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("specimen_sweep", root / "benchmarks" / "specimen_sweep.py")
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    base_raw = yaml.safe_load((root / "configs" / "specimen.yaml").read_text())
    base = load_config(raw=base_raw)
    cfg = load_config(raw=sweep.scaled_config(base_raw, grains))
    m = cfg.mesh
    assert grains_from_size(m.grain_size * 1e6, (m.width * 1e6, m.height * 1e6)) == grains
    assert m.width == pytest.approx(2.0 * m.height, rel=1e-5) and m.grain_size == base.mesh.grain_size
    assert len(m.flaws) == len(base.mesh.flaws) == 3
    for f, g in zip(m.flaws, base.mesh.flaws):
        assert f.center[0] / m.width == pytest.approx(g.center[0] / base.mesh.width, rel=1e-5)
        assert (f.length, f.width, f.center[1]) == (g.length, g.width, g.center[1])
