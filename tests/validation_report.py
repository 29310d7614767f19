"""Collect the validation records of a test run into validation/report.md.

The ``record_validation`` fixture (tests/conftest.py) writes one JSON line
per verified quantity into build/validation/np<N>.jsonl (N = ranks), and,
under ``VALIDATION=1``, each pytest session's wall time into
session-np<N>.json. This script (pure Python, no DOLFINx) groups the lines
by case and writes, for each, the theory or reference value, the measured
value, the tolerance, pass/fail, the ranks and the test's wall time, then
the figures of the scenario runs. ``make validate`` runs it last.

    python3 tests/validation_report.py [--records build/validation] [--out validation/report.md]

Exit status 1 if a record failed or there are none, so that a validation
run that lost its records fails too.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fmt(value) -> str:
    """Short text of a number, a list of numbers, or anything else."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        body = ", ".join(fmt(v) for v in value[:6])
        return f"[{body}{', ...' if len(value) > 6 else ''}]"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    return str(value)


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def load(records: Path) -> tuple[list[dict], list[dict]]:
    rows, sessions = [], []
    for path in sorted(records.glob("np*.jsonl")):
        for k, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SystemExit(f"error: {path}:{k} is not a JSON line ({exc})") from None
    for path in sorted(records.glob("session-np*.json")):
        sessions.append(json.loads(path.read_text()))
    return rows, sessions


def family(case: str) -> str:
    """E1, F3, C4, ... -> the first token; other cases sort after them, by name."""
    head = case.split()[0] if case.split() else ""
    return head if head[:1].isalpha() and head[1:].isdigit() else "~" + case.split(":")[0]


def deviation(reference, measured) -> str:
    """|measured / reference - 1| (|measured| if the reference is 0), when both are numbers."""
    num = (int, float)
    if isinstance(reference, bool) or isinstance(measured, bool):
        return ""
    if not (isinstance(reference, num) and isinstance(measured, num)):
        return ""
    if math.isnan(reference) or math.isnan(measured):
        return ""
    dev = abs(measured) if reference == 0 else abs(measured / reference - 1)
    return f"{dev:.2g}"


def render(rows: list[dict], sessions: list[dict], out: Path) -> str:
    n_fail = sum(not r["passed"] for r in rows)
    lines = [
        "# Validation report",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `make validate` "
        "(tests/validation_report.py from the `record_validation` records of the test runs). "
        "Cases are those of the verification plan (E electrochemistry, F fracture and mechanics, "
        "M meshes, C coupled); deviation is |measured / reference - 1|; wall time is the test's own, "
        "on the ranks given.",
        "",
        f"**{len(rows) - n_fail} of {len(rows)} checks pass.**",
        "",
    ]
    if sessions:
        lines += ["| pytest session | ranks | tests | failed | wall time |", "|---|---|---|---|---|"]
        for s in sorted(sessions, key=lambda s: s["ranks"]):
            lines.append(f"| {'serial' if s['ranks'] == 1 else 'MPI'} | {s['ranks']} | {s['tests']} | "
                         f"{s['failed']} | {s['wall_s'] / 60:.1f} min |")
        lines.append("")
    lines += ["| case | reference (theory) | measured | deviation | tolerance | result | ranks | wall s | test |",
              "|---|---|---|---|---|---|---|---|---|"]
    order = sorted(rows, key=lambda r: (family(r["case"]), r["ranks"]))  # stable: run order within a family
    for r in order:
        test = r["test"].split("::", 1)[-1]
        lines.append("| " + " | ".join(cell(x) for x in (
            r["case"], fmt(r["reference"]), fmt(r["measured"]), deviation(r["reference"], r["measured"]),
            r["tolerance"],
            "pass" if r["passed"] else f"**FAIL** ({r['outcome']})", r["ranks"], f"{r['wall_s']:.1f}",
            f"`{test}`")) + " |")
    figs = [(r, f) for r in order for f in r.get("figures", [])]
    if figs:
        lines += ["", "## Figures", ""]
        seen = set()
        for r, f in figs:
            if f in seen:
                continue
            seen.add(f)
            rel = Path(f)
            try:
                rel = (ROOT / f).relative_to(out.parent.resolve())
            except ValueError:
                pass
            lines.append(f"![{r['case']}: {Path(f).stem} ({r['ranks']} ranks)]({rel.as_posix()})")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=Path, default=ROOT / "build" / "validation")
    ap.add_argument("--out", type=Path, default=ROOT / "validation" / "report.md")
    args = ap.parse_args(argv)
    rows, sessions = load(args.records)
    if not rows:
        print(f"error: no validation records in {args.records} (expected np<N>.jsonl from a test run)",
              file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(rows, sessions, args.out.resolve()))
    n_fail = sum(not r["passed"] for r in rows)
    print(f"{args.out}: {len(rows)} checks, {n_fail} failed")
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
