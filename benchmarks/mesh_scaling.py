"""Mesh generation time and size vs number of grains (2D Voronoi).

    docker/envrun python3 benchmarks/mesh_scaling.py [--max 2000] [--grain-size 5] [--dolfinx]

Grain size fixed (mean equivalent diameter d um), the box grows with N
(aspect 2:1), h = d/5 inside grains, h_fine = d/10 at grain boundaries,
so the element count should grow linearly in N. Phases: geometry record
(seeds, clipped Voronoi, regularisation, estimate), gmsh OCC geometry +
fragment + tags, meshing, and optionally the DOLFINx load (model_to_mesh).
One gmsh thread (determinism).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meshes.build import build_geometry, gmsh_session, mesh_report, set_size_fields  # noqa: E402
from meshes.generate import make_record  # noqa: E402
from solver.config import load_config  # noqa: E402

GRAINS = [10, 30, 100, 300, 1000, 2000]


def config(n: int, d: float):
    area = n * np.pi * d**2 / 4.0
    H = np.sqrt(area / 2.0)
    raw = {"name": f"scaling_{n}", "mesh": {
        "kind": "voronoi", "width": f"{2 * H} um", "height": f"{H} um", "grains": n, "seed": 1,
        "h": f"{d / 5} um", "h_fine": f"{d / 10} um", "orientation": {"mode": "stratified"}}}
    return load_config(raw=raw)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max", type=int, default=2000, help="largest grain count (default 2000)")
    p.add_argument("--grain-size", type=float, default=5.0, help="mean grain diameter [um]")
    p.add_argument("--dolfinx", action="store_true", help="also time the DOLFINx load (model_to_mesh)")
    a = p.parse_args(argv)
    import gmsh

    head = (f"{'grains':>7} {'box [um]':>15} {'est. elem':>10} {'elements':>10} {'min SICN':>9} "
            f"{'record s':>9} {'geometry s':>10} {'mesh s':>8}" + (f" {'dolfinx s':>9}" if a.dolfinx else "")
            + f" {'total s':>8}")
    print(head)
    print("-" * len(head))
    for n in [g for g in GRAINS if g <= a.max]:
        cfg = config(n, a.grain_size)
        t0 = time.perf_counter()
        rec = make_record(cfg.mesh)
        t1 = time.perf_counter()
        with gmsh_session():
            ents = build_geometry(rec)
            set_size_fields(rec, ents)
            t2 = time.perf_counter()
            gmsh.model.mesh.generate(2)
            t3 = time.perf_counter()
            rep = mesh_report(rec, ents)
            t4 = t3
            if a.dolfinx:
                from mpi4py import MPI

                from solver.mesh.polycrystal import gmsh_model_to_mesh

                gmsh_model_to_mesh(gmsh.model, MPI.COMM_SELF, 0, 2)
                t4 = time.perf_counter()
        W, H = rec["box"]
        row = (f"{rec['n_grains']:>7} {f'{W:.0f} x {H:.0f}':>15} {rec['estimated_elements']:>10,} "
               f"{rep['elements']:>10,} {rep['min_sicn']:>9.3f} {t1 - t0:>9.2f} {t2 - t1:>10.2f} {t3 - t2:>8.2f}"
               + (f" {t4 - t3:>9.2f}" if a.dolfinx else "") + f" {max(t4, t3) - t0:>8.2f}")
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
