"""``python3 -m solver mesh`` writes mesh.msh, mesh.json, mesh.xdmf/.h5 and
mesh.png for gmsh kinds (notch, centre crack, Na-filled flaw, 3D) and for
kind rectangle; bad geometry exits 1 with one line naming the key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_mesh(config, outdir, *extra):
    return subprocess.run([sys.executable, "-m", "solver", "mesh", str(config), "-o", str(outdir), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def check_outputs(outdir: Path, gmsh_kind=True):
    names = ["mesh.json", "mesh.xdmf", "mesh.h5", "mesh.png"] + (["mesh.msh"] if gmsh_kind else [])
    for n in names:
        assert (outdir / n).is_file() and (outdir / n).stat().st_size > 0, n
    assert (outdir / "mesh.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = json.loads((outdir / "mesh.json").read_text())
    assert info["schema_version"] == 1 and info["units"]["coordinates"] == "um"
    assert info["tags"]["facets"] == {"plating_electrode": 1, "counter_electrode": 2, "outer": 3,
                                      "grain_boundary": 4, "flaw": 5}
    xdmf = (outdir / "mesh.xdmf").read_text()
    for name in ("grain_id", "orientation", "facet_tags", "grain"):
        assert f'Name="{name}"' in xdmf, name
    return info


@pytest.mark.parametrize("name", ["voronoi_notch", "single_crystal_crack", "bicrystal"])
def test_solver_mesh_example_configs(name, tmp_path):
    r = run_mesh(ROOT / "configs" / "meshes" / f"{name}.yaml", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "elements expected" in r.stdout and "min SICN" in r.stdout
    info = check_outputs(tmp_path)
    assert info["mesh"]["min_sicn"] > 0.3
    assert len(info["grains"]) == info["n_grains"] == len(info["orientation"]["angles"])
    for g in info["grains"]:
        assert set(g) >= {"id", "area", "centroid", "angle", "neighbours"}
    assert info["generator"]["gmsh"] and info["vertices"] and info["flaws"]
    if name == "voronoi_notch":
        assert any(f["filled_with_na"] for f in info["flaws"])
        assert info["seeds"] and info["regularisation"]["min_edge_um"] > 0


def test_solver_mesh_rectangle_and_3d(tmp_path):
    r = run_mesh(ROOT / "configs" / "verification" / "conduction_polycrystal.yaml", tmp_path / "rect")
    assert r.returncode == 0, r.stderr
    info = check_outputs(tmp_path / "rect", gmsh_kind=False)
    assert len(info["orientation"]["angles"]) == info["n_grains"]
    r = run_mesh(ROOT / "configs" / "meshes" / "voronoi3d.yaml", tmp_path / "3d",
                 "--set", "mesh.grains=5", "--set", "mesh.h='2 um'", "--set", "mesh.h_fine='1 um'")
    assert r.returncode == 0, r.stderr
    info = check_outputs(tmp_path / "3d")
    assert np.allclose(np.linalg.norm(info["orientation"]["c_axes"], axis=1), 1.0)


def test_solver_mesh_bad_geometry_exits_1(tmp_path):
    r = run_mesh(ROOT / "configs" / "meshes" / "voronoi_notch.yaml", tmp_path,
                 "--set", "mesh.flaws=[{type: crack, center: [39 um, 10 um], length: 5 um, width: 0.5 um}]")
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("config error: ") for ln in lines), r.stderr
    assert "mesh.flaws[0].center" in r.stderr and "outside the box" in r.stderr
    assert not (tmp_path / "mesh.msh").exists()
