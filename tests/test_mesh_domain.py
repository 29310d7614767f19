"""gmsh polycrystals in DOLFINx on 1 and 2 ranks (docs/verification-plan.md M1, M3,
M6): tags, grain-boundary dS integrals (shared-facet ghosting), DG0
orientation = sidecar on every rank."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from solver.config import load_config

dolfinx = pytest.importorskip("dolfinx")
from dolfinx import fem  # noqa: E402

from solver.mesh import polycrystal  # noqa: E402


def config(**kw):
    base = {"kind": "voronoi", "width": "20 um", "height": "10 um", "grains": 20, "seed": 5,
            "h": "0.8 um", "h_fine": "0.4 um", "orientation": {"mode": "stratified", "seed": 2}}
    base.update(kw)
    return load_config(raw={"name": "t", "mesh": base})


def integral(dom, expr_measure):
    val = fem.assemble_scalar(fem.form(expr_measure))
    return dom.comm.allreduce(val, op=MPI.SUM)


def one(dom):
    return fem.Constant(dom.mesh, 1.0)


def check_tags(dom):
    """Facet tagged grain boundary iff its two cells are in different
    grains (every owned interior facet); exterior facets carry 1, 2, 3 or 5;
    nothing tagged twice; grain ids 1..N over all ranks."""
    msh = dom.mesh
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    f2c = msh.topology.connectivity(tdim - 1, tdim)
    nf_own = msh.topology.index_map(tdim - 1).size_local
    ft = dom.facet_tags
    assert len(np.unique(ft.indices)) == len(ft.indices)
    tag = np.zeros(msh.topology.index_map(tdim - 1).size_local + msh.topology.index_map(tdim - 1).num_ghosts, int)
    tag[ft.indices] = ft.values
    grain = np.zeros(len(dom.grain_id.x.array), int)
    grain[dom.cell_tags.indices] = dom.cell_tags.values
    ext = set(dolfinx.mesh.exterior_facet_indices(msh.topology))
    for f in range(nf_own):
        cells = f2c.links(f)
        if len(cells) == 2:
            differ = grain[cells[0]] != grain[cells[1]]
            assert (tag[f] == 4) == differ, f"facet {f}: tag {tag[f]}, grains {grain[cells]}"
            assert tag[f] in (0, 4, 5)
        else:
            assert f in ext
            assert tag[f] in (1, 2, 3, 5), f"exterior facet {f} tagged {tag[f]}"
    ids = set(np.concatenate(dom.comm.allgather(np.unique(dom.cell_tags.values))))
    assert ids == set(range(1, dom.n_grains + 1))


def check_orientation(dom):
    """DG0 theta / c_axis / grain_id equal the sidecar value of the cell's
    grain on every local cell (owned and ghost), on every rank."""
    grain = np.zeros(len(dom.grain_id.x.array), int)
    grain[dom.cell_tags.indices] = dom.cell_tags.values
    V = dom.grain_id.function_space
    ncell = len(grain)
    dofs = V.dofmap.list[:ncell, 0]
    assert np.array_equal(dom.grain_id.x.array[dofs], grain)
    if dom.c_axis is None:
        angles = np.asarray(dom.info["orientation"]["angles"])
        assert np.array_equal(dom.theta.x.array[dofs], angles[grain - 1])
        for g in dom.info["grains"]:
            assert g["angle"] == angles[g["id"] - 1]
    else:
        axes = np.asarray(dom.info["orientation"]["c_axes"])
        vd = dom.c_axis.function_space.dofmap.list[:ncell, 0]
        got = np.column_stack([dom.c_axis.x.array[3 * vd + k] for k in range(3)])
        assert np.array_equal(got, axes[grain - 1])


def gb_length_of_polygons(rec):
    V = np.asarray(rec["vertices"])
    edges = {}
    for cyc in rec["cells"]:
        for a, b in zip(cyc, cyc[1:] + cyc[:1]):
            edges[(min(a, b), max(a, b))] = edges.get((min(a, b), max(a, b)), 0) + 1
    return sum(np.linalg.norm(V[a] - V[b]) for (a, b), k in edges.items() if k == 2)


@pytest.mark.mpi
def test_voronoi_domain_serial_vs_parallel(comm):
    """GB length by dS(4) = sum of interior polygon edges (straight edges:
    exact to round-off) on COMM_SELF and COMM_WORLD; grain areas by dx(g)
    = polygon areas (1e-10); electrode lengths = W."""
    cfg = config()
    dom = polycrystal.load_domain(cfg, comm)
    ser = polycrystal.load_domain(cfg, MPI.COMM_SELF)
    for d in (dom, ser):
        check_tags(d)
        check_orientation(d)
    dx, ds, dS = dom.measures()
    L = integral(dom, one(dom) * dS(4))
    dxs, dss, dSs = ser.measures()
    Ls = integral(ser, one(ser) * dSs(4))
    exact = gb_length_of_polygons(dom.info)
    assert abs(L - Ls) < 1e-12 * exact
    assert abs(L - exact) < 1e-10 * exact
    assert abs(integral(dom, one(dom) * ds(1)) - 20.0) < 1e-10
    assert abs(integral(dom, one(dom) * ds(2)) - 20.0) < 1e-10
    assert abs(integral(dom, one(dom) * ds(3)) - 20.0) < 1e-10
    for g in dom.info["grains"]:
        a = integral(dom, one(dom) * dx(g["id"]))
        assert abs(a - g["area"]) < 1e-10 * g["area"]
    # gb_band marks exactly the cells that touch a grain-boundary facet
    assert integral(dom, dom.gb_band * dx) > 0
    assert dom.n_grains == 20 and dom.width == 20.0 and dom.height == 10.0


@pytest.mark.mpi
def test_flaws_domain_serial_vs_parallel(comm):
    """Notch + centre crack (holes) + Na-filled pore: tags consistent on
    every rank; dS over GB and flaw facets equal on 1 and 2 ranks; the
    plating electrode loses exactly the notch width; the filled pore
    outline (interior flaw facets) has the ellipse perimeter (h-accurate)."""
    flaws = [
        {"type": "notch", "center": ["10 um", 0], "length": "3 um", "width": "0.8 um"},
        {"type": "crack", "center": ["5 um", "6 um"], "length": "4 um", "width": "0.4 um", "angle": "20 deg"},
        {"type": "pore", "center": ["15 um", "5 um"], "length": "2 um", "width": "1 um", "filled_with_na": True},
    ]
    cfg = config(flaws=flaws)
    dom = polycrystal.load_domain(cfg, comm)
    ser = polycrystal.load_domain(cfg, MPI.COMM_SELF)
    vals = []
    for d in (dom, ser):
        check_tags(d)
        check_orientation(d)
        dx, ds, dS = d.measures()
        vals.append([integral(d, one(d) * dS(4)), integral(d, one(d) * dS(5)), integral(d, one(d) * ds(5)),
                     integral(d, one(d) * ds(1)), integral(d, one(d) * dx)])
    np.testing.assert_allclose(vals[0], vals[1], rtol=1e-12)
    gb, pore, holes, plating, area = vals[0]
    assert abs(plating - (20.0 - 0.8)) < 1e-10
    # inscribed polygon of the ellipse (a = 1, b = 0.5 um, Ramanujan perimeter): shorter than the
    # ellipse, by at most the chord defect theta^2/24 of a segment h_fine = 0.4 um on the smallest
    # radius of curvature b^2/a = 0.25 um (theta = 1.6)
    perimeter = np.pi * (3 * (1.0 + 0.5) - np.sqrt((3 * 1.0 + 0.5) * (1.0 + 3 * 0.5)))
    assert perimeter * (1 - 1.6**2 / 24) < pore < perimeter
    assert holes > 2 * 3.0 + 2 * 4.0 - 2 * 0.8  # notch sides + crack faces
    assert area < 200.0


@pytest.mark.mpi
def test_bicrystal_domain(comm):
    cfg = config(kind="bicrystal", grains=None, h_fine=None,
                 orientation={"mode": "given", "angles": ["10 deg", "100 deg"]})
    dom = polycrystal.load_domain(cfg, comm)
    check_tags(dom)
    check_orientation(dom)
    dx, ds, dS = dom.measures()
    assert abs(integral(dom, one(dom) * dS(4)) - 10.0) < 1e-10  # the boundary x = W/2, length H
    x = dolfinx.fem.functionspace(dom.mesh, ("DG", 0))
    xc = dolfinx.fem.Function(x)
    xc.interpolate(lambda p: p[0])
    # grain 1 left, grain 2 right; theta = 10 deg left, 100 deg right
    left = integral(dom, (dom.theta - np.radians(10.0)) ** 2 * dx(1))
    right = integral(dom, (dom.theta - np.radians(100.0)) ** 2 * dx(2))
    assert left < 1e-24 and right < 1e-24
    assert abs(integral(dom, xc * dx(1)) / 100.0 - 5.0) < 1e-10


@pytest.mark.mpi
def test_voronoi_3d_domain(comm):
    cfg = config(dim=3, width="4 um", height="4 um", depth="4 um", grains=6, h="1 um", h_fine=None,
                 lloyd_iterations=2, orientation={"mode": "random", "seed": 3})
    dom = polycrystal.load_domain(cfg, comm)
    ser = polycrystal.load_domain(cfg, MPI.COMM_SELF)
    for d in (dom, ser):
        check_tags(d)
        check_orientation(d)
    areas = []
    for d in (dom, ser):
        dx, ds, dS = d.measures()
        areas.append([integral(d, one(d) * dS(4)), integral(d, one(d) * ds(1)), integral(d, one(d) * dx)])
    np.testing.assert_allclose(areas[0], areas[1], rtol=1e-12)
    assert abs(areas[0][1] - 16.0) < 1e-10 and abs(areas[0][2] - 64.0) < 1e-10


@pytest.mark.mpi
def test_mesh_file_roundtrip(comm, shared_tmp):
    """kind 'file' reads mesh.msh + mesh.json written by solver mesh and
    gives the same mesh (cells, GB length, angles)."""
    cfg = config()
    polycrystal.mesh_command(cfg, shared_tmp, comm)
    dom = polycrystal.load_domain(config(), comm)
    raw = {"name": "f", "mesh": {"kind": "file", "file": str(shared_tmp / "mesh.msh")}}
    back = polycrystal.load_domain(load_config(raw=raw), comm)
    check_tags(back)
    check_orientation(back)
    n0 = dom.mesh.topology.index_map(2).size_global
    assert back.mesh.topology.index_map(2).size_global == n0
    L = [integral(d, one(d) * d.measures()[2](4)) for d in (dom, back)]
    assert abs(L[0] - L[1]) < 1e-12 * L[0]
    assert back.info["orientation"]["angles"] == dom.info["orientation"]["angles"]
