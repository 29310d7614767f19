"""Crack onset at a pressurised flaw vs the ETEM-AFM paper's argument.

Liu et al. 2020 (ACS Energy Lett., the second seed) join two relations:

    eq. 3   sigma V_m = F dphi            (a Na deposit held at overpotential
                                           dphi pushes with sigma)
    eq. 4   sigma_f = K_IC / sqrt(pi a)   (a flaw of size a breaks at sigma_f)

so a Na-filled flaw of size a cracks once dphi > V_m K_IC / (F sqrt(pi a))
(10 um: 87 mV with K_IC = 2 MPa m^0.5). Eq. 3 is docs/verification-plan.md E4 (the
stall pressure of a confined deposit, tests/test_electrochemistry.py). This
benchmark checks eq. 4 with the `energy` (AT2) fracture model for several
flaw sizes: configs/verification/fracture_pressurised_flaw.yaml scaled with
a (box 20a x 10a, roller at y = 0 so the slot is half of a centre crack of
half-length a), the slot faces pressurised by a ramp, l = 0.5 um, h = l/5.

Printed per flaw size: Griffith p_c = K / sqrt(pi a) with the AT2 mesh
toughening K = K_IC sqrt(1 + h/(2l)); the pressure at which the phase-field
crack first reaches l beyond the flaw tip, and the LEFM pressure for that
tip (partially loaded crack, Tada 5.8: K = 2 p sqrt(a'/pi) arcsin(a/a'));
the voltages dphi = p V_m / F of eq. 3 for both.

    docker/envrun mpirun -n 2 python3 benchmarks/flaw_onset.py --sizes 5 10 20

Measured (2 ranks, this machine; l = 0.5 um, h = 0.1 um; pressures in MPa):

    a um  p_c   dphi_c mV  first d>0.5  crack +l  LEFM(+l)  ratio  dphi(+l) mV  wall s
    5     529   130        667          688       721       0.955  169          141
    10    374    92        449          464       469       0.990  114          233
    20    265    65        307          318       319       0.996   78          188

    --model stress --steps 25 (default strengths, sigma_cp = 30 MPa): the crack
    is l past the tip at 10.2 / 7.2 / 5.1 MPa for a = 5 / 10 / 20 um, an
    apparent toughness of 0.028 MPa m^0.5 (1.3-2.5 mV by eq. 3); the runs end
    'failed' after the crack cuts the box (mechanics Newton), after the onset.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from mpi4py import MPI

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solver.config import schedule_value, validate  # noqa: E402
from solver.scales import FARADAY as F  # noqa: E402
from solver.run import run  # noqa: E402

BASE = ROOT / "configs" / "verification" / "fracture_pressurised_flaw.yaml"


def lefm_pressure(K: float, a: float, tip: float) -> float:
    """Pressure [Pa] on the flaw faces (depth a) that holds the crack tip at tip >= a [m]."""
    return K / (2.0 * np.sqrt(tip / np.pi) * np.arcsin(min(1.0, a / tip)))


def flaw_config(a_um: float, l_um: float, h_um: float, steps: int, outdir: Path, model: str = "energy"):
    raw = yaml.safe_load(BASE.read_text())
    m = raw["mesh"]
    W, H = 20 * a_um, 10 * a_um
    m.update({"width": f"{W} um", "height": f"{H} um", "h": f"{max(a_um, 10 * h_um)} um", "h_fine": f"{h_um} um",
              "refine_band": {"x0": f"{W / 2 - 1} um", "x1": f"{W / 2 + 1} um",
                              "y0": f"{max(a_um - 2, 0)} um", "y1": f"{a_um + 8 * l_um} um"},
              "flaws": [{"type": "notch", "center": [f"{W / 2} um", "0 um"], "length": f"{a_um} um",
                         "width": f"{2 * h_um} um"}]})
    raw["fracture"]["length_scale"] = f"{l_um} um"
    raw["fracture"]["model"] = model
    cfg0 = validate(raw)
    K = cfg0.fracture.toughness * np.sqrt(1 + h_um / (2 * l_um))
    p_c = K / np.sqrt(np.pi * a_um * 1e-6)
    # the ramp: energy model, one step to 0.9 p_c, then 2% of p_c per step;
    # stress model (no K_IC in it), from 0 to 0.1 p_c in equal steps
    lo, hi = (0.9, 0.9 + 0.02 * steps) if model == "energy" else (0.1 / steps, 0.1)
    raw["loading"]["mechanical"]["value"] = {"points": [[0.0, 0.0], [1.0, lo * p_c], [1.0 + steps, hi * p_c]]}
    raw["time"].update({"t_end": 1.0 + steps, "max_steps": steps + 10})
    raw["output"] = {"every": 1000, "checkpoint_every": 1000}
    raw["name"] = f"flaw_onset_a{a_um:g}"
    return validate(raw), K, p_c


def onset(cfg, outdir: Path, a: float, l: float, K: float):
    rows = list(csv.DictReader(open(outdir / "scalars.csv")))
    first, at_l = None, None
    for r in rows:
        tip = float(r["crack_tip_m"])
        p = schedule_value(cfg.loading.mechanical.value, float(r["time_s"]))
        if np.isfinite(tip) and tip > a + 1e-9 and first is None:
            first = p
        if np.isfinite(tip) and tip - a >= l:
            return first, p, lefm_pressure(K, a, tip), tip
    return first, float("nan"), float("nan"), float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[5.0, 10.0, 20.0], help="flaw depths a [um]")
    ap.add_argument("--l", type=float, default=0.5, help="phase-field length l [um]")
    ap.add_argument("--h", type=float, default=0.1, help="element size in the crack band [um]")
    ap.add_argument("--steps", type=int, default=40, help="load steps (energy: 2%% of p_c each after 0.9 p_c)")
    ap.add_argument("--model", choices=["energy", "stress"], default="energy",
                    help="fracture.model (stress: the default strengths; the ramp then goes to 0.1 p_c)")
    ap.add_argument("--out", default=str(ROOT / "build" / "bench-flaw-onset"))
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    rows = []
    for a_um in args.sizes:
        out = Path(args.out) / f"a{a_um:g}"
        cfg, K, p_c = flaw_config(a_um, args.l, args.h, args.steps, out, args.model)
        t0 = time.perf_counter()
        run(cfg, out, comm=comm)
        wall = time.perf_counter() - t0
        first, p_on, p_lefm, tip = onset(cfg, out, a_um * 1e-6, args.l * 1e-6, K)
        rows.append((a_um, p_c, first, p_on, p_lefm, tip, wall))
        Vm = cfg.materials.sodium.molar_volume
    if comm.rank == 0:
        print(f"\nflaw onset, {args.model} model, l = {args.l} um, h = {args.h} um, K_IC = 2 MPa m^0.5, "
              f"{comm.size} rank(s)")
        print(f"{'a um':>6} {'p_c MPa':>8} {'dphi_c mV':>9} {'p(d>0.5) MPa':>12} {'p(+l) MPa':>9} "
              f"{'LEFM(+l) MPa':>12} {'ratio':>6} {'K_app MPa m^.5':>14} {'dphi(+l) mV':>11} {'wall s':>7}")
        for a_um, p_c, first, p_on, p_lefm, tip, wall in rows:
            K_app = p_on / lefm_pressure(1.0, a_um * 1e-6, tip) if np.isfinite(tip) else float("nan")
            print(f"{a_um:6.1f} {p_c / 1e6:8.1f} {p_c * Vm / F * 1e3:9.1f} {(first or np.nan) / 1e6:12.1f} "
                  f"{p_on / 1e6:9.1f} {p_lefm / 1e6:12.1f} {p_on / p_lefm:6.3f} {K_app / 1e6:14.3f} "
                  f"{p_on * Vm / F * 1e3:11.1f} {wall:7.1f}")
        print(f"p_c = K/sqrt(pi a), K = K_IC sqrt(1 + h/2l); dphi = p V_m / F (V_m = {Vm * 1e6:g} cm^3/mol); "
              "p(d>0.5): first damage beyond the flaw tip; p(+l): crack tip l beyond it; "
              "K_app: the toughness that LEFM infers from p(+l) and that tip")


if __name__ == "__main__":
    main()
