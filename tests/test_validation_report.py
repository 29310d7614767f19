"""tests/validation_report.py (make validate's report) on hand-made records,
and the record_validation fixture writing them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _module():
    spec = importlib.util.spec_from_file_location("validation_report", HERE / "validation_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _line(case, passed, **kw):
    r = {"case": case, "reference": 1.0, "measured": 1.01, "tolerance": "3% rel", "passed": passed,
         "figures": [], "test": f"tests/test_x.py::test_{case.split()[0]}", "ranks": 1, "outcome": "passed",
         "wall_s": 2.5}
    r.update(kw)
    return json.dumps(r)


def test_report_lists_every_case_with_its_numbers_and_fails_on_a_failed_check(tmp_path):
    mod = _module()
    rec = tmp_path / "records"
    rec.mkdir()
    (rec / "np1.jsonl").write_text(_line("E1 planar velocity", True) + "\n" + _line("F2 surface energy", True) + "\n")
    (rec / "np2.jsonl").write_text(_line("E1 planar velocity", True, ranks=2, measured=[0.5, float("nan")]) + "\n")
    (rec / "session-np1.json").write_text(json.dumps({"ranks": 1, "wall_s": 90.0, "tests": 3, "failed": 0,
                                                      "exitstatus": 0}))
    out = tmp_path / "validation" / "report.md"
    assert mod.main(["--records", str(rec), "--out", str(out)]) == 0
    text = out.read_text()
    assert "**3 of 3 checks pass.**" in text
    rows = [ln for ln in text.splitlines() if ln.startswith("| E1") or ln.startswith("| F2")]
    assert len(rows) == 3
    assert "| 1 | 1.01 | 0.01 | 3% rel | pass | 1 | 2.5 |" in rows[0]
    assert "[0.5, nan]" in rows[1] and "| 2 |" in rows[1]
    assert "| serial | 1 | 3 | 0 | 1.5 min |" in text

    (rec / "np1.jsonl").write_text(_line("C3 wedge", False, outcome="failed") + "\n")
    assert mod.main(["--records", str(rec), "--out", str(out)]) == 1
    assert "**FAIL** (failed)" in out.read_text()


def test_report_without_records_is_an_error(tmp_path, capsys):
    assert _module().main(["--records", str(tmp_path), "--out", str(tmp_path / "r.md")]) == 1
    assert "no validation records" in capsys.readouterr().err


def test_record_validation_writes_one_line_per_check(tmp_path):
    """The fixture in a child pytest session: records carry the test's
    outcome, a failing assert after the record marks it failed."""
    import os
    import subprocess
    import sys

    child = tmp_path / "child" / "tests"
    child.mkdir(parents=True)
    (child / "conftest.py").write_text((HERE / "conftest.py").read_text())
    (child / "test_child.py").write_text(
        "def test_ok(record_validation):\n"
        "    record_validation('E9 toy', 2.0, 2.0, 'exact')\n"
        "    assert True\n\n"
        "def test_bad(record_validation):\n"
        "    record_validation('E9 toy', 2.0, 3.0, 'exact', passed=False)\n"
        "    assert 3.0 == 2.0\n")
    out = tmp_path / "records"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "PMI_"))}
    env.update(VALIDATION_DIR=str(out), VALIDATION="0")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(child),
                           str(child)], capture_output=True, text=True, env=env, cwd=child)
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout + proc.stderr
    lines = [json.loads(x) for x in (out / "np1.jsonl").read_text().splitlines()]
    assert [(r["test"].split("::")[-1], r["passed"], r["outcome"]) for r in lines] == [
        ("test_ok", True, "passed"), ("test_bad", False, "failed")]
    assert all(r["wall_s"] >= 0 and r["measured"] in (2.0, 3.0) for r in lines)
