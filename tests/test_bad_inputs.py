"""Every bad input refused by `solver check` (and the entry points) with exit 1
and one line naming the key or path, no traceback (issue 23).

Most cases call ``solver.cli.main`` in-process (the code path of the
command, without a new interpreter per case); a few run the real command
to see exit codes and stderr as a user does.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from solver.cli import main
from solver.config import Config
from solver.config.schema import _flatten

ROOT = Path(__file__).resolve().parents[1]
DEMO = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())


def _run(capsys, argv) -> tuple[int, list[str]]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    return code, [ln for ln in err.splitlines() if ln.strip()]


def _check(tmp_path, capsys, data=None, text=None, name="bad.yaml", extra=()):
    p = tmp_path / name
    if text is not None:
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
    else:
        p.write_text(yaml.safe_dump(data, sort_keys=False))
    return _run(capsys, ["check", p, *extra])


def _set(d: dict, dotted: str, value) -> dict:
    import copy

    d = copy.deepcopy(d)
    cur = d
    parts = dotted.split(".")
    for k in parts[:-1]:
        cur = cur.setdefault(k, {})
    cur[parts[-1]] = value
    return d


# --------------------------------------------------------------------------
# generated fuzz set: every numeric leaf of the schema gets values of the wrong kind
# --------------------------------------------------------------------------
def _numeric_leaves() -> list[str]:
    flat = _flatten(Config().to_dict())
    return sorted(k for k, v in flat.items()
                  if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.split(".")[-1].isdigit())


BAD_VALUES = {"text": "abc", "list": [1, 2], "mapping": {"x": 1}, "nan": float("nan")}
FUZZ = [(k, kind) for k in _numeric_leaves() for kind in BAD_VALUES]


def test_fuzz_set_is_large():
    assert len(FUZZ) >= 200, len(FUZZ)


@pytest.mark.parametrize("key, kind", FUZZ, ids=[f"{k}={v}" for k, v in FUZZ])
def test_fuzz_wrong_kind_of_value(tmp_path, capsys, key, kind):
    code, lines = _check(tmp_path, capsys, _set(DEMO, key, BAD_VALUES[kind]))
    assert code == 1, lines
    assert len(lines) == 1, lines
    assert key in lines[0] and "Traceback" not in lines[0], lines


UNKNOWN = ["mesh.hh", "materials.electrolyte.youngs_modullus", "loading.electrical.volts", "time.tend",
           "solver.stagger.max_iteration", "output.evry", "fracture.lenght_scale", "toplevel_typo"]


@pytest.mark.parametrize("key", UNKNOWN)
def test_fuzz_unknown_key(tmp_path, capsys, key):
    code, lines = _check(tmp_path, capsys, _set(DEMO, key, 1))
    assert code == 1 and len(lines) == 1 and key in lines[0] and "unknown key" in lines[0], lines


# --------------------------------------------------------------------------
# the classes of issue 23, one by one
# --------------------------------------------------------------------------
CASES = {
    # key expected in the line: config (as YAML text)
    "mesh.h": "mesh: {kind: voronoi, grains: 4, width: 1 mm, height: 1 mm, h: 1 nm}",
    "mesh.structured": "mesh: {structured: 1000000}",
    "mesh.file": "mesh: {kind: file, file: /nonexistent/mesh.msh}",
    "mesh.seeds_file": "mesh: {kind: voronoi, seeds_file: /nonexistent/seeds.txt}",
    "loading.mechanical.boundary": "loading: {mechanical: {type: pressure, boundary: top, value: 1 MPa}}",
    "loading.mechanical.fixed": "loading: {mechanical: {type: pressure, fixed: bottom, value: 1 MPa}}",
    "loading.electrical.current_density":
        "loading: {electrical: {control: potentiostatic, voltage: 0.1 V, current_density: 10 A/m^2}}",
    "loading.electrical.voltage": "loading: {electrical: {control: potentiostatic, voltage: 1000 V}}",
    "materials.temperature": "materials: {temperature: 1e-30 K}",
    "name": "name: ../x",
    "mesh.flaws": "mesh: {kind: rectangle, flaws: [{type: notch, center: [1e-5, 0], length: 1 um, width: 0.2 um}]}",
    "mesh.seed": "mesh: {kind: voronoi, grains: 3, seed: -1}",
    "mesh.lloyd_iterations": "mesh: {kind: voronoi, grains: 3, lloyd_iterations: 1000000000}",
    "materials.electrolyte.youngs_modulus": "materials: {electrolyte: {youngs_modulus: .inf}}",
}


@pytest.mark.parametrize("key", list(CASES))
def test_check_refuses_what_mesh_or_run_would(tmp_path, capsys, key):
    code, lines = _check(tmp_path, capsys, text=CASES[key])
    assert code == 1, lines
    assert len(lines) == 1 and key in lines[0], lines


def test_seeds_file_that_does_not_parse(tmp_path, capsys):
    (tmp_path / "seeds.txt").write_text("1e-6 2e-6\nnot numbers\n")
    code, lines = _check(tmp_path, capsys, text=f"mesh: {{kind: voronoi, seeds_file: {tmp_path / 'seeds.txt'}}}")
    assert code == 1 and len(lines) == 1 and "mesh.seeds_file" in lines[0], lines


def test_mesh_file_that_is_not_a_mesh(tmp_path, capsys):
    (tmp_path / "m.msh").write_text("hello")
    (tmp_path / "m.json").write_text("{broken")
    code, lines = _check(tmp_path, capsys, text=f"mesh: {{kind: file, file: {tmp_path / 'm.msh'}}}")
    assert code == 1 and lines and all("mesh.file" in ln for ln in lines), lines


def test_duplicate_keys_name_both_lines(tmp_path, capsys):
    code, lines = _check(tmp_path, capsys, text="name: x\nmesh:\n  h: 1 um\ntime: {}\nmesh:\n  h: 2 um\n")
    assert code == 1 and len(lines) == 1 and "'mesh'" in lines[0] and "lines 2 and 5" in lines[0], lines
    code, lines = _check(tmp_path, capsys, text="mesh:\n  h: 1 um\n  width: 1 um\n  h: 2 um\n")
    assert code == 1 and "'h'" in lines[0] and "lines 2 and 4" in lines[0], lines


def test_merge_keys_are_not_duplicates(tmp_path, capsys):
    text = ("materials:\n  electrolyte: &e {conductivity_parallel: 1 S/m}\n"
            "  sodium: {}\nmesh:\n  <<: {h: 1 um, width: 20 um}\n  h: 2 um\n")
    code, lines = _check(tmp_path, capsys, text=text)
    assert code == 0, lines


def test_non_utf8_names_the_byte(tmp_path, capsys):
    code, lines = _check(tmp_path, capsys, text=b"name: x\nmaterials:\n  temperature: 300\xff K\n")
    assert code == 1 and len(lines) == 1 and "byte 37" in lines[0] and "line 3" in lines[0], lines


def _bomb(levels: int, width: int = 9) -> str:
    out = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        out.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    out.append(f"mesh:\n  h: *a{levels - 1}")
    return "\n".join(out) + "\n"


def test_alias_bomb_fails_fast_with_small_memory(tmp_path, capsys):
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    code, lines = _check(tmp_path, capsys, text=_bomb(12))  # 9^12 = 2.8e11 values once expanded
    assert time.perf_counter() - t0 < 5.0
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) < 100_000  # kB
    assert code == 1 and len(lines) == 1 and "alias" in lines[0], lines


def test_recursive_alias(tmp_path, capsys):
    code, lines = _check(tmp_path, capsys, text="a: &a [*a]\n")
    assert code == 1 and len(lines) == 1 and "recursive" in lines[0], lines


def test_error_lines_are_cut_to_a_readable_length(tmp_path, capsys):
    code, lines = _check(tmp_path, capsys, data=_set(DEMO, "mesh.h", "x" * 900_000))
    assert code == 1 and len(lines) == 1 and "mesh.h" in lines[0], lines[0][:500]
    assert len(lines[0]) <= 700, len(lines[0])


def test_deep_nesting(tmp_path, capsys):
    code, lines = _check(tmp_path, capsys, text="a: " + "[" * 20000 + "]" * 20000 + "\n")
    assert code == 1 and len(lines) == 1, lines[:3]


# --------------------------------------------------------------------------
# entry points: paths, permissions, command line
# --------------------------------------------------------------------------
def test_config_path_is_a_directory(tmp_path, capsys):
    code, lines = _run(capsys, ["check", tmp_path])
    assert code == 1 and len(lines) == 1 and "is a directory" in lines[0] and str(tmp_path) in lines[0], lines


def test_config_not_found(tmp_path, capsys):
    code, lines = _run(capsys, ["check", tmp_path / "none.yaml"])
    assert code == 1 and len(lines) == 1 and "not found" in lines[0], lines


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_config_not_readable(tmp_path, capsys):
    p = tmp_path / "c.yaml"
    p.write_text("name: x\n")
    p.chmod(0)
    code, lines = _run(capsys, ["check", p])
    assert code == 1 and len(lines) == 1 and "not readable" in lines[0], lines


@pytest.mark.parametrize("argv", [["check"], ["check", "x.yaml", "--bogus"], ["frobnicate"], []])
def test_argparse_errors_exit_1(capsys, argv):
    code, lines = _run(capsys, argv)
    assert code == 1 and lines and "error" in lines[-1], lines


def _out_cases(tmp_path):
    f = tmp_path / "afile"
    f.write_text("")
    return {"existing file": (f, "is a file"), "/dev/null": (Path("/dev/null"), "not a directory"),
            "below a file": (f / "sub", "not a directory")}


@pytest.mark.parametrize("case", ["existing file", "/dev/null", "below a file"])
@pytest.mark.parametrize("command", ["mesh", "run"])
def test_output_dir_that_cannot_be_one(tmp_path, capsys, case, command):
    out, expect = _out_cases(tmp_path)[case]
    code, lines = _run(capsys, [command, ROOT / "configs" / "demo.yaml", "-o", out])
    assert code == 1 and len(lines) == 1 and expect in lines[0] and str(out) in lines[0], lines


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_output_dir_read_only(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    code, lines = _run(capsys, ["run", ROOT / "configs" / "demo.yaml", "-o", ro])
    assert code == 1 and len(lines) == 1 and "not writable" in lines[0], lines


def test_restart_into_missing_directory(tmp_path, capsys):
    code, lines = _run(capsys, ["run", ROOT / "configs" / "demo.yaml", "-o", tmp_path / "none", "--restart"])
    assert code == 1 and len(lines) == 1 and "does not exist" in lines[0], lines


def test_report_of_a_file(tmp_path, capsys):
    f = tmp_path / "x"
    f.write_text("")
    code, lines = _run(capsys, ["report", f])
    assert code == 1 and len(lines) == 1 and "not a directory" in lines[0], lines


def test_run_name_cannot_leave_results(tmp_path, capsys):
    for bad in ("../x", "/tmp/x", "a/b", "..", ""):
        code, lines = _check(tmp_path, capsys, data={**DEMO, "name": bad})
        assert code == 1 and len(lines) == 1 and lines[0].startswith("config error: name"), (bad, lines)


def test_default_name_from_an_odd_file_name(tmp_path, capsys):
    code, lines = _check(tmp_path, capsys, data={k: v for k, v in DEMO.items() if k != "name"}, name="my run (2).yaml")
    assert code == 0, lines


# --------------------------------------------------------------------------
# PETSc options
# --------------------------------------------------------------------------
def test_unknown_petsc_option_refused(tmp_path, capsys):
    pytest.importorskip("petsc4py")
    data = _set(DEMO, "solver.petsc", {"mechanics": {"ksp_typo": "cg", "ksp_rtol": 1e-8},
                                       "electrochemistry": {"ksp_gmres_restart": 50, "pc_hypre_bogus": 1}})
    code, lines = _check(tmp_path, capsys, data)
    assert code == 1 and len(lines) == 2, lines
    assert "solver.petsc.mechanics.ksp_typo" in lines[0] and "solver.petsc.electrochemistry.pc_hypre_bogus" in lines[1]


def test_option_of_another_ksp_type_refused(tmp_path, capsys):
    pytest.importorskip("petsc4py")
    data = _set(DEMO, "solver.petsc", {"potential": {"ksp_type": "cg", "ksp_gmres_restart": 30}})
    code, lines = _check(tmp_path, capsys, data)
    assert code == 1 and len(lines) == 1 and "ksp_gmres_restart" in lines[0], lines


def test_valid_petsc_options_pass(tmp_path, capsys):
    pytest.importorskip("petsc4py")
    data = _set(DEMO, "solver.petsc", {"mechanics": {"ksp_rtol": 1e-9, "pc_gamg_threshold": 0.02},
                                       "fracture": {"ksp_type": "gmres", "ksp_gmres_restart": 30}})
    code, lines = _check(tmp_path, capsys, data)
    assert code == 0, lines


# --------------------------------------------------------------------------
# the real command, as a user sees it
# --------------------------------------------------------------------------
@pytest.mark.parametrize("argv, key", [
    (["check", "configs/demo.yaml", "--set", "materials.temperature=1e-30 K"], "materials.temperature"),
    (["check", "configs/demo.yaml", "--bogus"], "unrecognized"),
    (["mesh", "configs/demo.yaml", "-o", "/dev/null"], "/dev/null"),
])
def test_command_line_exit_1_one_line(argv, key):
    r = subprocess.run([sys.executable, "-m", "solver", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and key in r.stderr
