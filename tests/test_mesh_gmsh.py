"""gmsh models of polycrystals (docs/verification-plan.md M1, M2, M3, M5, M7) and
the input checks. gmsh + numpy only (no DOLFINx); small meshes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from meshes import flaws as flawlib
from meshes.build import gmsh_session
from meshes.generate import build, make_record
from solver.config import ConfigError, load_config

gmsh = pytest.importorskip("gmsh")


def mesh_cfg(**kw):
    base = {"kind": "voronoi", "width": "20 um", "height": "10 um", "grains": 25, "seed": 2,
            "h": "0.8 um", "orientation": {"mode": "stratified", "seed": 1}}
    base.update(kw)
    return load_config(raw={"name": "t", "mesh": base}).mesh


def _model_counts():
    return {d: len(gmsh.model.getEntities(d)) for d in range(3)}


def test_grains_topology_area_closure_no_flaws():
    """M1-M3: N grains, ids 1..N, one surface each; V - E + F = 1 in the
    gmsh model; each GB curve borders two different grains; OCC and mesh
    area of each grain equal its polygon area (1e-10); total = box."""
    rec = make_record(mesh_cfg())
    n = rec["n_grains"]
    assert n == 25
    with gmsh_session():
        res = build(rec)
        c = _model_counts()
        assert c[0] - c[1] + c[2] == 1
        assert sorted(res["grain_entities"]) == list(range(1, n + 1))
        assert all(len(e) == 1 for e in res["grain_entities"].values())
        grain_of = {e[0]: g for g, e in res["grain_entities"].items()}
        for curve in res["facet_entities"][4]:
            up, _ = gmsh.model.getAdjacencies(1, curve)
            assert len(up) == 2 and grain_of[up[0]] != grain_of[up[1]]
        tagged = [e for es in res["facet_entities"].values() for e in es]
        assert len(tagged) == len(set(tagged)) == c[1]  # every curve tagged exactly once
        # GB curves = interior polygon edges of the tessellation
        edges = {}
        for g, cyc in enumerate(rec["cells"]):
            for a, b in zip(cyc, cyc[1:] + cyc[:1]):
                edges.setdefault((min(a, b), max(a, b)), []).append(g)
        assert len(res["facet_entities"][4]) == sum(len(v) == 2 for v in edges.values())
        rep = res["report"]
    poly = np.array([gr["area"] for gr in rec["grains"]])
    W, H = rec["box"]
    assert abs(poly.sum() - W * H) < 1e-12 * W * H
    np.testing.assert_allclose(rep["measure_of_grain_geometry_um"], poly, rtol=1e-10)
    np.testing.assert_allclose(rep["measure_of_grain_mesh_um"], poly, rtol=1e-10)
    # neighbours in the sidecar are symmetric
    nb = {gr["id"]: set(gr["neighbours"]) for gr in rec["grains"]}
    assert all(g in nb[k] for g, ks in nb.items() for k in ks)


def test_area_closure_with_flaws_and_split_grains():
    """M2 with flaws: sum of grain areas = box - notch - crack (exact OCC
    areas, 1e-10); a Na-filled pore keeps its area inside the grains; the
    pieces of grains split by the notch keep their grain id."""
    flaws = [
        {"type": "notch", "center": ["10 um", 0], "length": "4 um", "width": "0.8 um"},
        {"type": "crack", "center": ["5 um", "6 um"], "length": "4 um", "width": "0.4 um", "angle": 0.4},
        {"type": "pore", "center": ["15 um", "5 um"], "length": "2 um", "width": "1 um", "filled_with_na": True},
    ]
    rec = make_record(mesh_cfg(flaws=flaws, h_fine="0.4 um"))
    W, H = rec["box"]
    holes = sum(flawlib.area(f, H) for f in rec["flaws"] if not f["filled_with_na"])
    with gmsh_session():
        res = build(rec)
        rep = res["report"]
        # the Na-filled pore outline is a closed loop of flaw curves inside
        flaw_curves = res["facet_entities"][5]
        interior = [c for c in flaw_curves if len(gmsh.model.getAdjacencies(1, c)[0]) == 2]
        assert interior and abs(sum(gmsh.model.occ.getMass(1, c) for c in interior) - _ellipse_perimeter(1.0, 0.5)) < 1e-6
        pieces = {g: len(e) for g, e in res["grain_entities"].items()}
    total = sum(rep["measure_of_grain_geometry_um"])
    assert abs(total - (W * H - holes)) < 1e-10 * W * H
    assert sorted(res["grain_entities"]) == list(range(1, rec["n_grains"] + 1))
    # the grain under the notch tip at x = 10 um is split in two pieces (or is
    # cut by the notch): its area is smaller than the polygon, pieces >= 1
    poly = np.array([gr["area"] for gr in rec["grains"]])
    geo = np.array(rep["measure_of_grain_geometry_um"])
    assert np.all(geo <= poly * (1 + 1e-10))
    assert abs((poly - geo).sum() - holes) < 1e-10 * W * H
    assert max(pieces.values()) >= 2  # the pore splits its grain into pore + rest (same id)


def _ellipse_perimeter(a, b):
    h = ((a - b) / (a + b)) ** 2
    return np.pi * (a + b) * (1 + 3 * h / (10 + np.sqrt(4 - 3 * h)) + 3 * h**5 / 2**17)  # Ramanujan, error ~ h^5


def test_quality_after_regularisation():
    """M5: min SICN > 0.3 after short-edge regularisation; no element edge
    below h/4 (uniform h), 60 grains."""
    rec = make_record(mesh_cfg(grains=60, h="0.6 um", seed=7))
    assert rec["regularisation"]["collapsed_edges"] >= 1
    with gmsh_session():
        rep = build(rec)["report"]
    assert rep["min_sicn"] > 0.3
    assert rep["min_edge_um"] >= 0.6 / 4


def test_quality_graded_mesh():
    rec = make_record(mesh_cfg(grains=40, h="1 um", h_fine="0.25 um", seed=8,
                               refine_band={"x0": "8 um", "x1": "12 um", "y0": 0, "y1": "10 um"}))
    with gmsh_session():
        rep = build(rec)["report"]
    assert rep["min_sicn"] > 0.3
    assert rep["min_edge_um"] >= 0.25 / 4
    # the element-count estimate is within a factor 1.5
    assert 1 / 1.5 < rec["estimated_elements"] / rep["elements"] < 1.5


def test_deterministic_hash_and_rebuild_from_sidecar():
    """M7: same input -> identical mesh hash (gmsh one thread); the sidecar
    alone (through JSON) rebuilds the identical mesh."""
    cfg = mesh_cfg(flaws=[{"type": "notch", "center": ["7 um", 0], "length": "3 um", "width": "0.8 um"}])
    hashes = []
    for _ in range(2):
        rec = make_record(cfg)
        with gmsh_session():
            hashes.append(build(rec)["report"]["hash"])
    rec2 = json.loads(json.dumps(rec))
    with gmsh_session():
        hashes.append(build(rec2)["report"]["hash"])
    assert hashes[0] == hashes[1] == hashes[2]
    with gmsh_session():
        other = build(make_record(mesh_cfg(seed=3)))["report"]["hash"]
    assert other != hashes[0]


def test_bicrystal_and_single_crystal():
    rec = make_record(mesh_cfg(kind="bicrystal", grains=None, orientation={"mode": "given", "angles": [0.3, "120 deg"]}))
    assert rec["n_grains"] == 2
    assert np.allclose(rec["orientation"]["angles"], [0.3, np.radians(120)])
    with gmsh_session():
        res = build(rec)
        (gb,) = res["facet_entities"][4]
        lo = gmsh.model.getBoundingBox(1, gb)
        assert abs(lo[0] - 10.0) < 1e-6 and abs(lo[3] - 10.0) < 1e-6  # at x = W/2
        assert abs(gmsh.model.occ.getMass(1, gb) - 10.0) < 1e-10
    rec = make_record(mesh_cfg(kind="single_crystal", grains=None, orientation={"mode": "given", "angles": [1.0]}))
    with gmsh_session():
        res = build(rec)
        assert res["facet_entities"][4] == []
        assert {k: len(v) for k, v in res["facet_entities"].items() if k in (1, 2, 3)} == {1: 1, 2: 1, 3: 2}


def test_voronoi_3d_small():
    """3D: volumes close the box (OCC and mesh, 1e-10), tags present, each
    GB face between two grains; quality reported (not required > 0.3)."""
    m = mesh_cfg(dim=3, width="4 um", height="4 um", depth="4 um", grains=6, h="1 um", lloyd_iterations=2,
                 orientation={"mode": "random", "seed": 2})
    rec = make_record(m)
    with gmsh_session():
        res = build(rec)
        grain_of = {e: g for g, es in res["grain_entities"].items() for e in es}
        for s in res["facet_entities"][4]:
            up, _ = gmsh.model.getAdjacencies(2, s)
            assert len(up) == 2 and grain_of[up[0]] != grain_of[up[1]]
        assert all(res["facet_entities"][k] for k in (1, 2, 3, 4))
        rep = res["report"]
    assert abs(sum(rep["measure_of_grain_geometry_um"]) - 64.0) < 1e-10 * 64
    np.testing.assert_allclose(rep["measure_of_grain_mesh_um"], [g["volume"] for g in rec["grains"]], rtol=1e-10)
    assert rep["min_sicn"] > 0.0
    assert len(rec["orientation"]["c_axes"]) == rec["n_grains"] == 6


# --------------------------------------------------------------------------
# bad input -> ConfigError naming the key, before any meshing
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, key",
    [
        ({"flaws": [{"type": "crack", "center": ["19.5 um", "5 um"], "length": "4 um", "width": "0.5 um"}]},
         "mesh.flaws[0].center"),
        ({"flaws": [{"type": "notch", "center": ["5 um", "3 um"], "length": "2 um", "width": "0.5 um"}]},
         "mesh.flaws[0].center"),
        ({"flaws": [{"type": "notch", "center": ["5 um", 0], "length": "12 um", "width": "0.5 um"}]},
         "mesh.flaws[0].center"),
        ({"grains": 5000}, "mesh.grains = 5000"),
        ({"grains": None, "grain_size": "0.5 um"}, "mesh.grain_size"),
        ({"refine_band": {"x0": "5 um", "x1": "30 um", "y0": 0, "y1": "2 um"}}, "mesh.refine_band"),
        ({"kind": "bicrystal", "grains": None, "orientation": {"mode": "given", "angles": [1.0]}},
         "mesh.orientation.angles"),
        ({"orientation": {"mode": "given", "angles": [1.0, 2.0]}}, "mesh.orientation.angles"),
        ({"seeds_file": "no/such/file.txt", "grains": None, "grain_size": "2 um"}, "mesh.seeds_file"),
    ],
)
def test_bad_input_is_a_config_error(kw, key):
    with pytest.raises(ConfigError) as exc:
        make_record(mesh_cfg(**kw))
    assert any(p.startswith(key) for p in exc.value.problems), exc.value.problems
    assert all("\n" not in p for p in exc.value.problems)


def test_seeds_file(shared_tmp):
    pts = np.array([[2e-6, 2e-6], [15e-6, 3e-6], [10e-6, 8e-6], [4e-6, 7e-6]])
    f = shared_tmp / "seeds.txt"
    np.savetxt(f, pts)
    rec = make_record(mesh_cfg(grains=None, seeds_file=str(f), min_edge=0))
    assert rec["n_grains"] == 4
    np.testing.assert_allclose(rec["seeds"], pts * 1e6)
    for gr, p in zip(rec["grains"], pts * 1e6):
        assert np.allclose(gr["seed"], p)
