"""``solver report DIR``: figures and a text summary of a run.

Reads scalars.csv and summary.json (no DOLFINx needed for the plots) and
writes DIR/figures/*.png and DIR/report.txt.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def read_scalars(path: Path) -> dict[str, list[float]]:
    cols: dict[str, list[float]] = {}
    with open(path) as fh:
        for row in csv.DictReader(fh):
            for k, v in row.items():
                try:
                    cols.setdefault(k, []).append(float(v))
                except (TypeError, ValueError):
                    cols.setdefault(k, []).append(float("nan"))
    return cols


def _plot(cols, keys, ylabel, path: Path, title: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [k for k in keys if k in cols and any(v == v for v in cols[k])]
    if not present or "time_s" not in cols:
        return False
    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    for k in present:
        ax.plot(cols["time_s"], cols[k], marker=".", label=k)
    ax.set_xlabel("time [s]")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(present) > 1:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def report(directory: Path) -> int:
    directory = Path(directory)
    scal, summ = directory / "scalars.csv", directory / "summary.json"
    if not scal.exists() or not summ.exists():
        print(f"error: {directory} is not a run directory (expected scalars.csv and summary.json)", file=sys.stderr)
        return 1
    cols = read_scalars(scal)
    summary = json.loads(summ.read_text())
    figs = directory / "figures"
    figs.mkdir(exist_ok=True)
    made = []
    for name, keys, label, title in [
        ("electrical.png", ["current_density_A_m2"], "current density [A/m^2]", "Current density"),
        ("voltage.png", ["cell_voltage_V"], "cell voltage [V]", "Cell voltage"),
        ("tips.png", ["dendrite_tip_m", "crack_tip_m"], "tip position y [m]", "Dendrite and crack tips"),
        ("deposit.png", ["deposited_volume_m3_m"], "deposited volume [m^3/m]", "Deposited Na"),
        ("iterations.png", ["stagger_iterations", "newton_iterations", "krylov_iterations"], "iterations", "Solver iterations"),
    ]:
        if _plot(cols, keys, label, figs / name, title):
            made.append(figs / name)
    lines = [
        f"run: {directory}",
        f"status: {summary.get('status')}, steps {summary.get('steps')}, final time {summary.get('final_time_s', 0):.4e} s",
        f"ranks {summary.get('ranks')}, DOFs {summary.get('dofs')}",
        f"wall time {summary.get('wall_time_s', 0):.1f} s: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in summary.get("wall_split_s", {}).items()),
    ]
    for k in ("current_density_A_m2", "cell_voltage_V", "charge_C_m", "dendrite_tip_m", "crack_length_m"):
        if k in cols and cols[k] and cols[k][-1] == cols[k][-1]:
            lines.append(f"final {k} = {cols[k][-1]:.6g}")
    lines += [f"figure: {p}" for p in made]
    text = "\n".join(lines) + "\n"
    (directory / "report.txt").write_text(text)
    print(text, end="")
    return 0
