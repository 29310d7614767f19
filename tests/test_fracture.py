"""Phase-field fracture (docs/model.md#fracture; docs/verification-plan.md F2, F3, F5,
damaged domain, irreversibility, serial vs parallel)."""

from __future__ import annotations

import numpy as np
import pytest
from mpi4py import MPI

from dolfinx import mesh as dmesh

from pathlib import Path

from solver.config import schedule_value, validate
from solver.mesh.domain import (
    COUNTER_ELECTRODE,
    GRAIN_BOUNDARY,
    OUTER,
    PLATING_ELECTRODE,
    Domain,
    box_boundary_facets,
    dg0_from_cell_values,
    make_facet_tags,
    num_local_cells,
    rectangle_domain,
    tag_grain_boundaries,
)
from solver.physics.fracture import FractureProblem, slit_rectangle_domain, stress_criteria
from solver.physics.mechanics import MechanicsProblem


def make_cfg(mesh=None, fracture=None, mechanics=None, load=None, materials=None):
    raw = {
        "mesh": {"width": 10e-6, "height": 10e-6, "structured": 4, **(mesh or {})},
        "electrochemistry": {"enabled": False},
        "fracture": {"model": "stress", **(fracture or {})},
        "mechanics": {**(mechanics or {})},
        "materials": materials or {},
        "loading": {"mechanical": load or {"type": "none"}},
    }
    return validate(raw)


ROOT = Path(__file__).resolve().parents[1]


def everywhere(comm, cond) -> bool:
    """A local condition true on every rank (asserting a local condition
    directly would leave the other ranks waiting in the next collective)."""
    return comm.allreduce(bool(cond), op=MPI.LAND)


def stagger(mp, fp, t=0.0, tol=1e-10, max_it=200):
    """Mechanics and damage alternated to convergence at load time t."""
    for _ in range(max_it):
        d0 = fp.d.x.array.copy()
        mp.solve(t)
        fp.update_history()
        fp.solve()
        change = mp.comm.allreduce(np.abs(fp.d.x.array - d0).max() if len(d0) else 0.0, op=MPI.MAX)
        if change < tol:
            return
    raise RuntimeError("stagger did not converge")


# --------------------------------------------------------------------------
# F2: 1D AT2 profile and surface energy
# --------------------------------------------------------------------------
def strip(comm, l, h, band: bool):
    """Strip [-L, L] x [0, 2h] (L = 12 l), d = 1 held on the node line x = 0
    (band=False) or on the two node lines x = 0, h (band=True, a crack one
    element wide as a nucleated crack is)."""
    L = 12 * l
    cfg = make_cfg(mesh={"width": 2 * L * 1e-6, "height": 2 * h * 1e-6, "structured": 2},
                   fracture={"model": "energy", "length_scale": l * 1e-6})
    dom = rectangle_domain(cfg, comm)
    mp = MechanicsProblem(dom, cfg)
    fp = FractureProblem(dom, cfg, mp)
    x = fp.V.tabulate_dof_coordinates()[:, 0] - L
    on = np.abs(x) < 1e-9 * L
    if band:
        on |= np.abs(x - h) < 1e-9 * L
    fp.add_crack_dofs(np.flatnonzero(on))
    fp.solve()
    return fp, x, 2 * h


@pytest.mark.mpi
def test_f2_at2_profile_and_surface_energy(comm, record_validation):
    """h = l/5. Node-line crack: d = exp(-|x|/l) to 1e-3 (nodal) and
    Gamma = width (1 + O((h/l)^2)) within 0.5%; element-wide crack:
    Gamma = width (1 + h/(2l)) within 2% (Bourdin's effective Gc)."""
    l, h = 1.0, 0.2
    fp, x, w = strip(comm, l, h, band=False)
    n = fp.V.dofmap.index_map.size_local
    err = np.abs(fp.d.x.array[:n] - np.exp(-np.abs(x[:n]) / l)).max() if n else 0.0
    assert comm.allreduce(err, op=MPI.MAX) < 1e-3
    assert fp.crack_surface() / w == pytest.approx(1.0, rel=5e-3)
    assert fp.crack_length() == pytest.approx(fp.crack_surface() * 1e-6, rel=1e-12)
    fp2, _, w = strip(comm, l, h, band=True)
    gamma = fp2.crack_surface() / w
    record_validation("F2 AT2 crack surface / length, element-wide crack (h = l/5)", 1 + h / (2 * l), gamma,
                      "2% rel", abs(gamma / (1 + h / (2 * l)) - 1) <= 0.02)
    assert fp2.crack_surface() / w == pytest.approx(1 + h / (2 * l), rel=0.02)
    # fracture energy = Gc Gamma in J/m (Gc = K_IC^2 (1 - nu^2) / E)
    Gc = (2e6) ** 2 * (1 - 0.22**2) / 200e9
    assert fp2.fracture_energy() == pytest.approx(Gc * fp2.crack_surface() * 1e-6, rel=1e-12)


# --------------------------------------------------------------------------
# F3: onset of damage in a homogeneous single crystal (stress model)
# --------------------------------------------------------------------------
SIG_CP, TAU_CP, SIG_B, NU = 30.0, 60.0, 300.0, 0.22


def onset_stress(psi):
    """Uniaxial stress s at angle psi to the plane normal: planes fail at
    (s c^2/sigma_cp)^2 + (s s c/tau_cp)^2 = 1; bulk at s^2 (1 + nu^2) =
    sigma_b^2 (plane strain: sigma_zz = nu s)."""
    c, s = np.cos(psi), np.sin(psi)
    q = (c**2 / SIG_CP) ** 2 + (s * c / TAU_CP) ** 2
    s_cp = 1 / np.sqrt(q) if q > 0 else np.inf
    return min(s_cp, SIG_B / np.sqrt(1 + NU**2))


def single_crystal(comm, theta, model="stress", extra=None):
    cfg = make_cfg(
        mesh={"orientation": {"mode": "given", "angles": [theta]}},
        fracture={"model": model, "strength_plane": SIG_CP * 1e6, "shear_strength_plane": TAU_CP * 1e6,
                  "strength_bulk": SIG_B * 1e6, **(extra or {})},
        load={"type": "pressure", "boundary": "counter_electrode", "support": "roller",
              "value": {"points": [[0.0, 0.0], [1000.0, -1e9]]}},  # -1 MPa per second: s = t MPa
    )
    dom = rectangle_domain(cfg, comm)
    mp = MechanicsProblem(dom, cfg)
    fp = FractureProblem(dom, cfg, mp)
    return mp, fp


@pytest.mark.mpi
@pytest.mark.parametrize("theta_deg", [0.0, 35.0, 60.0, 80.0, 90.0])
def test_f3_anisotropic_onset(comm, theta_deg, record_validation):
    """Damage is zero at 0.995 s* and nonzero at 1.005 s* (s* the analytic
    onset stress), so the onset is within 0.5%; above onset the homogeneous
    damage is d = H/(1+H), H = zeta max(D_cp, D_b)."""
    psi = np.radians(theta_deg)
    s_star = onset_stress(psi)
    mp, fp = single_crystal(comm, psi)
    for fac, damaged in ((0.995, False), (1.005, True)):
        fp.H.x.array[:] = 0.0
        fp.d.x.array[:] = 0.0
        mp.solve(fac * s_star)
        fp.update_history()
        fp.solve()
        dmax = fp.max_damage()
        record_validation(f"F3 onset, theta = {theta_deg} deg: damage at {fac} s* (s* = {s_star:.4g} MPa)",
                          "> 0" if damaged else 0.0, dmax, "onset within 0.5%", (dmax > 0) == damaged)
        if not damaged:
            assert dmax == 0.0 and fp.max_history() == 0.0
        else:
            sig = np.zeros((1, 3, 3))
            sig[0, 1, 1], sig[0, 2, 2] = fac * s_star, NU * fac * s_star
            m = np.array([[-np.sin(psi), np.cos(psi), 0.0]])
            Dcp, Db = stress_criteria(sig, m, SIG_CP, TAU_CP, SIG_B)
            H = max(Dcp[0], Db[0])
            assert H > 0
            assert fp.max_history() == pytest.approx(H, rel=1e-6)
            assert dmax == pytest.approx(H / (1 + H), rel=1e-6)


@pytest.mark.mpi
def test_grain_boundary_band_criterion(comm):
    """Bicrystal split at y = H/2: the GB criterion (normal traction sigma_yy
    on horizontal GB facets, sigma_gb = 30 MPa) fires at s = sigma_gb only in
    the cells touching the GB; the conduction planes (theta = 0, normal
    along y, sigma_cp = 1000 MPa) and the bulk stay intact."""
    cfg = make_cfg(mesh={"structured": 6},
                   fracture={"strength_plane": 1e9, "strength_bulk": 3e9, "strength_grain_boundary": 30e6},
                   load={"type": "pressure", "boundary": "counter_electrode", "support": "roller",
                         "value": {"points": [[0.0, 0.0], [1000.0, -1e9]]}})
    dom = rectangle_domain(cfg, comm)
    msh = dom.mesh
    ncell = num_local_cells(msh)
    mid = dmesh.compute_midpoints(msh, 2, np.arange(ncell, dtype=np.int32))
    grain = np.where(mid[:, 1] < 5.0, 1, 2).astype(np.int32)
    gb, band = tag_grain_boundaries(msh, grain)
    bottom, top, other = box_boundary_facets(msh, 10.0)
    dom = Domain(mesh=msh, cell_tags=dmesh.meshtags(msh, 2, np.arange(ncell, dtype=np.int32), grain),
                 facet_tags=make_facet_tags(msh, {PLATING_ELECTRODE: bottom, COUNTER_ELECTRODE: top,
                                                  OUTER: other, GRAIN_BOUNDARY: gb}),
                 grain_id=dg0_from_cell_values(msh, grain.astype(float), "grain_id"),
                 theta=dg0_from_cell_values(msh, np.zeros(ncell), "orientation"),
                 gb_band=dg0_from_cell_values(msh, band, "gb"), n_grains=2, width=10.0, height=10.0)
    mp = MechanicsProblem(dom, cfg)
    fp = FractureProblem(dom, cfg, mp)
    mp.solve(29.9)
    fp.update_history()
    assert fp.max_history() == 0.0
    mp.solve(30.3)
    fp.update_history()
    H = fp.H.x.array[fp._qdofs]
    expected = (30.3 / 30.0) ** 2 - 1
    nown = msh.topology.index_map(2).size_local
    assert everywhere(comm, np.allclose(H[:nown][band[:nown] > 0], expected, rtol=1e-6))
    assert everywhere(comm, np.all(H[:nown][band[:nown] == 0] == 0.0))
    assert comm.allreduce(int((band[:nown] > 0).sum()), op=MPI.SUM) == 2 * 6  # 6 cells on each side


# --------------------------------------------------------------------------
# energy model: homogeneous AT2 bar
# --------------------------------------------------------------------------
@pytest.mark.mpi
def test_energy_model_homogeneous_at2(comm):
    """nu = 0, split none, uniaxial bar under displacement e H: the converged
    staggered solution is d = x/(1+x), x = l E e^2 / Gc, and
    sigma = ((1-k_res)(1-d)^2 + k_res) E e; the stress peaks at 3 sqrt(3)/16 sqrt(E Gc / l)
    when x = 1/3."""
    E, l, Gc, kres = 200e3, 1.0, 20.0, 1e-6
    e_peak = np.sqrt(Gc / (3 * l * E))
    cfg = make_cfg(materials={"electrolyte": {"youngs_modulus": E * 1e6, "poisson_ratio": 0.0}},
                   mechanics={"split": "none", "residual_stiffness": kres},
                   fracture={"model": "energy", "length_scale": l * 1e-6, "critical_energy_release_rate": Gc},
                   load={"type": "displacement", "boundary": "counter_electrode", "support": "roller",
                         "direction": [0.0, 1.0], "value": {"points": [[0.0, 0.0], [1.0, 10e-6], [2.0, 20e-6]]}})
    dom = rectangle_domain(cfg, comm)
    mp = MechanicsProblem(dom, cfg)
    fp = FractureProblem(dom, cfg, mp)
    peak = 0.0
    for e in (0.5 * e_peak, e_peak, 1.5 * e_peak):
        stagger(mp, fp, t=e)
        x = l * E * e**2 / Gc
        d = x / (1 + x)
        assert fp.max_damage() == pytest.approx(d, rel=1e-6)
        s = mp.reaction_force("counter_electrode")[1] / 10.0  # N/m / um = MPa
        assert s == pytest.approx(((1 - kres) * (1 - d) ** 2 + kres) * E * e, rel=1e-6)
        peak = max(peak, s)
    assert peak == pytest.approx(3 * np.sqrt(3) / 16 * np.sqrt(E * Gc / l), rel=1e-5)


# --------------------------------------------------------------------------
# damaged domain: threshold, irreversibility, softening
# --------------------------------------------------------------------------
@pytest.mark.mpi
@pytest.mark.parametrize("theta_deg", [0.0, 50.0])
def test_damaged_domain_threshold_and_no_healing(comm, theta_deg):
    """sigma_m0 = [c^2/s0 + (1-c^2)/(r s0)]^-1 with c = n1.m: no cell at
    0.999 sigma_m0, every cell at 1.001 sigma_m0; unloading keeps d = 1;
    damaged cells carry modulus x 1e-4 (strain energy x 1e4 under the same
    traction)."""
    s0, r = 30.0, 10.0
    psi = np.radians(theta_deg)
    thr = 1.0 / (np.cos(psi) ** 2 / s0 + np.sin(psi) ** 2 / (r * s0))
    mp, fp = single_crystal(comm, psi, model="damaged_domain",
                            extra={"damaged_domain": {"threshold": s0 * 1e6, "threshold_ratio": r}})
    assert fp.d.function_space.ufl_element().degree == 0
    mp.solve(0.999 * thr)
    U0 = mp.elastic_energy()
    fp.update_history()
    fp.solve()
    assert fp.max_damage() == 0.0
    mp.solve(1.001 * thr)
    fp.update_history()
    fp.solve()
    n = fp.ncell_owned
    assert everywhere(comm, np.all(fp.d.x.array[fp._qdofs[:n]] == 1.0))
    mp.solve(0.0)  # unload
    fp.update_history()
    fp.solve()
    assert everywhere(comm, np.all(fp.d.x.array[fp._qdofs[:n]] == 1.0))
    mp.solve(0.999 * thr)
    assert mp.elastic_energy() == pytest.approx(U0 / 1e-4, rel=1e-6, abs=0)


@pytest.mark.mpi
def test_history_and_damage_never_decrease(comm):
    """Load, then unload: H and d keep their maxima; save/restore round-trips."""
    mp, fp = single_crystal(comm, 0.0)
    mp.solve(40.0)
    fp.update_history()
    fp.solve()
    H1, d1 = fp.H.x.array.copy(), fp.d.x.array.copy()
    assert fp.max_damage() > 0
    fp.save_state()
    mp.solve(0.0)
    fp.update_history()
    fp.solve()
    assert everywhere(comm, np.all(fp.H.x.array >= H1) and np.all(fp.d.x.array >= d1))
    mp.solve(50.0)
    fp.update_history()
    fp.solve()
    assert fp.max_damage() > comm.allreduce(d1.max(), op=MPI.MAX)
    fp.restore_state()
    assert everywhere(comm, np.array_equal(fp.d.x.array, d1) and np.array_equal(fp.H.x.array, H1))


# --------------------------------------------------------------------------
# notched specimens: serial vs parallel; F5 crack path
# --------------------------------------------------------------------------
def notched(comm, theta, n, sig_cp, sig_b, l=1.0, W=20.0, beta_c=0.0):
    cfg = make_cfg(
        mesh={"orientation": {"mode": "given", "angles": [theta]}},
        fracture={"model": "stress", "length_scale": l * 1e-6, "strength_plane": sig_cp * 1e6,
                  "strength_bulk": sig_b * 1e6, "structural_tensor": beta_c},
        load={"type": "displacement", "boundary": "counter_electrode", "support": "clamped",
              "direction": [0.0, 1.0], "value": {"points": [[0.0, 0.0], [100.0, 1e-4]]}},
    )
    dom = slit_rectangle_domain(comm, W, W, n, n, slit_length=W / 2, theta=theta, diagonal="right")
    mp = MechanicsProblem(dom, cfg)
    fp = FractureProblem(dom, cfg, mp)
    return mp, fp


@pytest.mark.mpi
def test_notched_serial_equals_parallel(comm):
    """A few staggered load steps on a notched crystal: COMM_SELF and
    COMM_WORLD give the same crack surface, energies and reaction to 1e-6
    (VERIFICATION C1). Not bit-identical: GAMG builds a partition-dependent
    hierarchy, so the iterates differ at the Krylov tolerance (measured
    ~1e-8 relative after 3 steps with ksp_rtol 1e-10)."""
    out = []
    for cm in (MPI.COMM_SELF, comm):
        mp, fp = notched(cm, np.radians(30), 20, 30.0, 300.0)
        for t in (0.02, 0.04, 0.06):
            stagger(mp, fp, t, tol=1e-9)
        out.append((fp.crack_surface(), fp.fracture_energy(), mp.elastic_energy(),
                    mp.reaction_force("counter_electrode")[1], fp.crack_tip()))
    assert out[0][0] > 0
    for a, b in zip(*out):
        assert a == pytest.approx(b, rel=1e-6)


def crack_angle(fp, tip=(10.0, 10.0), l=1.0, threshold=0.9):
    """Angle [deg] of the principal axis of the points with d > threshold
    ahead of the notch tip (x > x_tip + l), and their extent."""
    n = fp.V.dofmap.index_map.size_local
    x = fp.V.tabulate_dof_coordinates()[:n, :2]
    sel = (fp.d.x.array[:n] > threshold) & (x[:, 0] > tip[0] + l)
    pts = np.concatenate(fp.comm.allgather(x[sel]), axis=0)
    if len(pts) < 5:
        return np.nan, 0.0
    rel = pts - np.array(tip)
    # direction through the tip: least squares slope y = k x
    k = (rel[:, 0] * rel[:, 1]).sum() / (rel[:, 0] ** 2).sum()
    return np.degrees(np.arctan(k)), rel[:, 0].max()


@pytest.mark.mpi
@pytest.mark.parametrize("sig_cp, beta_c, expect", [(30.0, 10.0, 30.0), (300.0, 0.0, 0.0)])
def test_f5_crack_follows_conduction_planes(comm, sig_cp, beta_c, expect, record_validation):
    """Mode I notch (slit from the left edge to the centre, top pulled),
    planes at theta = 30 deg. Anisotropic crystal (sigma_cp = sigma_b/10 and
    structural tensor beta_c = 10): the crack runs along the planes;
    isotropic (sigma_cp = sigma_b, beta_c = 0): along the notch. Within
    10 deg, fitted through the tip over the first 4 l of growth or more.
    20 x 20 um, l = 1 um, h = 0.4 um (l/2.5).

    (Measured: 28.6 deg and 4.0 deg. With strength anisotropy alone,
    beta_c = 0, the crack deviates only ~12 deg: ahead of a mode-I tip the
    stress is nearly equibiaxial, so the plane criterion is exceeded most
    straight ahead; the cleavage direction comes from the anisotropic
    crack-surface energy, i.e. B.)"""
    mp, fp = notched(comm, np.radians(30.0), 50, sig_cp, 300.0, beta_c=beta_c)
    t, dt = 0.0, 2.5e-4  # um of top displacement per step (~2.5 MPa nominal)
    ext = 0.0
    for _ in range(200):
        t += dt
        stagger(mp, fp, t, tol=1e-4, max_it=300)
        ang, ext = crack_angle(fp)
        if ext > 4.0:
            break
    record_validation(f"F5 crack angle [deg], sigma_cp = {sig_cp} MPa, beta_c = {beta_c}", expect, ang, "10 deg",
                      ext > 4.0 and abs(ang - expect) < 10.0)
    assert ext > 4.0
    assert abs(ang - expect) < 10.0, (ang, ext, t)


@pytest.mark.mpi
def test_inner_fracture_iterations_resolve_a_crack_jump_within_one_step(comm, tmp_path_factory):
    """solver.stagger.fracture_iterations = K runs K alternations mechanics <->
    fracture at a frozen load inside one (F) stage. A crack that is unstable
    at the held load (F5 notched crystal at 0.025 um) must reach the same
    fixed point as K outer stagger iterations of the plain scheme (the same
    alternating minimisation), and that fixed point must be converged
    (max|dd| <= tol_d) with the crack run out well past the notch tip."""
    from solver.config import load_config
    from solver.coupling.staggered import CoupledSolver
    from solver.run import RunContext

    base = ["mesh.h=2 um", "mesh.h_fine=0.4 um", "loading.mechanical.value=0.0027e-6", "time.t_end=1 s",
            "solver.stagger.tol_d=1e-5"]
    ds, tips, lengths = [], [], []
    for extra in (["solver.stagger.max_iterations=1", "solver.stagger.fracture_iterations=400"],
                  ["solver.stagger.max_iterations=400", "solver.stagger.fracture_iterations=1"]):
        cfg = load_config(ROOT / "configs/verification/fracture_notched_crystal.yaml", overrides=base + extra)
        out = tmp_path_factory.mktemp("inner") if comm.rank == 0 else None
        ctx = RunContext(cfg, comm.bcast(out, root=0), comm)
        solver = CoupledSolver(ctx)
        before = solver.frac.crack_length()
        info = solver.step(1.0, 1.0)
        lengths.append((before, solver.frac.crack_length()))
        # global measures (the two meshes may be partitioned differently on 2 ranks)
        ds.append((solver.frac.fracture_energy(), solver.frac.crack_length()))
        tips.append(solver.frac.crack_tip())
        n_alternations = info["fracture_iterations"] if extra[1].endswith("400") else info["stagger_iterations"]
        assert n_alternations < 400, "the alternation did not converge: pick a smaller held load"
    assert ds[0] == pytest.approx(ds[1], rel=1e-4)
    assert tips[0] == pytest.approx(tips[1], abs=0.5e-6)
    assert lengths[0][1] - lengths[0][0] > 2e-6  # the crack ran out beyond the notch at the held load


def lefm_flaw_pressure(K: float, a: float, a_tip: float) -> float:
    """Pressure [Pa] that holds a crack tip at a_tip >= a [m] when only the
    flaw faces (depth a) are loaded: centre crack of half-length a_tip in an
    infinite plate, pressure on |x| < a (Tada, Paris & Irwin 5.8):
    K_I = 2 p sqrt(a_tip / pi) arcsin(a / a_tip); at a_tip = a, p sqrt(pi a)."""
    return K / (2.0 * np.sqrt(a_tip / np.pi) * np.arcsin(min(1.0, a / a_tip)))


@pytest.mark.mpi
def test_pressurised_flaw_follows_lefm(comm, shared_tmp, record_validation):
    """Liu et al. 2020 eq. 4 with the energy (AT2) model: a 10 um slot at a
    roller-supported surface, its faces pressurised (configs/verification/
    fracture_pressurised_flaw.yaml; here one step to 360 MPa, then 460 -> 500
    MPa in steps of 10 MPa).

    * No crack (tip less than l beyond the flaw) below the Griffith pressure
      p_c = K / sqrt(pi a), K = K_IC sqrt(1 + h/(2l)) (the AT2 toughening on
      a mesh of size h).
    * Once the crack has grown l..3l, the applied pressure is the LEFM
      pressure of the partially loaded crack at the measured tip within 5%:
      the tip (d > 0.5 nodes) is located to h = l/5, which moves p by < 1%,
      and the regularisation shifts the effective crack length by O(l/a) = 5%.

    On this mesh (0.1 um over the config's band) only: the check is not
    converged in h (0.05 um cells: 0.80-0.82 of LEFM; docs/known-limits.md).
    """
    import csv

    import yaml

    from solver.run import run

    root = Path(__file__).resolve().parents[1]
    raw = yaml.safe_load((root / "configs/verification/fracture_pressurised_flaw.yaml").read_text())
    raw["loading"]["mechanical"]["value"] = {"points": [[0.0, 0.0], [1.0, 360e6], [2.0, 460e6], [6.0, 500e6]]}
    raw["time"].update({"t_end": 6.0})
    raw["output"] = {"every": 1000, "checkpoint_every": 1000}
    cfg = validate(raw)
    assert run(cfg, shared_tmp, comm=comm) == 0
    rows = list(csv.DictReader(open(shared_tmp / "scalars.csv")))
    a, l, h = 10e-6, 0.5e-6, 0.1e-6
    K = 2e6 * np.sqrt(1 + h / (2 * l))
    p_c = lefm_flaw_pressure(K, a, a)
    assert schedule_value(cfg.loading.mechanical.value, 1.0) < p_c
    growing = []
    for r in rows:
        t = float(r["time_s"])
        p = schedule_value(cfg.loading.mechanical.value, t)
        tip = float(r["crack_tip_m"])
        ext = tip - a if np.isfinite(tip) else 0.0
        if ext < l:
            continue
        assert p >= p_c, f"crack grew {ext:.2e} m at p = {p:.3e} Pa < p_c = {p_c:.3e} Pa"
        if ext <= 3 * l:
            growing.append((p, lefm_flaw_pressure(K, a, tip)))
    if comm.rank == 0:
        print("p, p_LEFM(tip) [MPa]:", [(round(p / 1e6), round(q / 1e6, 1)) for p, q in growing])
    for p, p_lefm in growing:
        record_validation("Liu eq. 4: pressurised 10 um flaw, applied pressure vs LEFM at the tip [Pa]", p_lefm, p,
                          "5% rel", abs(p / p_lefm - 1) < 0.05)
    assert len(growing) >= 3, growing
    for p, p_lefm in growing:
        assert abs(p / p_lefm - 1) < 0.05, (p, p_lefm)


# --------------------------------------------------------------------------
# damaged domain: lattice cascade (cells_per_iteration)
# --------------------------------------------------------------------------
def pressurised_pore(comm, batch, R=2.0, W=40.0, h=0.5):
    """A circular pore (radius R um) in an isotropic W x W um crystal, its face
    loaded by p = t MPa; damaged_domain with threshold 30 MPa in every
    direction (threshold_ratio 1). Lame: the hoop stress at the pore is p
    all round it, falling as p R^2 / r^2."""
    c = W / 2 * 1e-6
    cfg = validate({
        "mesh": {"kind": "single_crystal", "width": W * 1e-6, "height": W * 1e-6,
                 "orientation": {"mode": "given", "angles": [0.0]}, "h": 4e-6, "h_fine": h * 1e-6,
                 "refine_band": {"x0": c - 8e-6, "x1": c + 8e-6, "y0": c - 8e-6, "y1": c + 8e-6},
                 "flaws": [{"type": "pore", "center": [c, c], "length": 2 * R * 1e-6, "width": 2 * R * 1e-6}]},
        "electrochemistry": {"enabled": False},
        "fracture": {"model": "damaged_domain",
                     "damaged_domain": {"threshold": 30e6, "threshold_ratio": 1.0, "cells_per_iteration": batch}},
        "loading": {"mechanical": {"type": "pressure", "boundary": "flaw", "support": "clamped",
                                   "value": {"points": [[0.0, 0.0], [1000.0, 1e9]]}}},
    })
    from solver.mesh import build_domain

    dom = build_domain(cfg, comm)
    mp = MechanicsProblem(dom, cfg)
    fp = FractureProblem(dom, cfg, mp)
    n = fp.ncell_owned
    mid = dmesh.compute_midpoints(dom.mesh, 2, np.arange(n, dtype=np.int32))[:, :2]
    r = np.hypot(mid[:, 0] - W / 2, mid[:, 1] - W / 2)
    return mp, fp, r, mid


def broken(fp):
    return fp.d.x.array[fp._qdofs[: fp.ncell_owned]] == 1.0


@pytest.mark.mpi
def test_cascade_breaks_the_most_overloaded_cells_over_all_ranks(comm):
    """cells_per_iteration = N: one update breaks exactly the N intact cells
    with the largest sigma_1 / sigma_m0 over the whole mesh (brute-force
    ranking of the gathered ratios), on 1 and 2 ranks alike."""
    N = 5
    mp, fp, r, mid = pressurised_pore(comm, N)
    mp.solve(60.0)  # p = 60 MPa: a ring of cells around the pore is over the threshold
    fp.update_history()
    n = fp.ncell_owned
    ratio = fp.Dtilde.x.array[fp._qdofs[:n]].copy()
    fp.solve()
    all_ratio = np.concatenate(comm.allgather(ratio))
    all_mid = np.concatenate(comm.allgather(mid))
    all_broken = np.concatenate(comm.allgather(broken(fp)))
    assert (all_ratio >= 1.0).sum() > 4 * N
    expect = np.argsort(-all_ratio, kind="stable")[:N]
    assert all_broken.sum() == N
    got = np.flatnonzero(all_broken)
    assert sorted(map(tuple, all_mid[got].round(9))) == sorted(map(tuple, all_mid[expect].round(9)))


@pytest.mark.mpi
def test_cascade_cracks_a_pressurised_pore_radially_where_the_batch_rule_breaks_a_ring(comm):
    """A pore under pressure just above the threshold (hoop stress = p all
    round it). Every cell of the first ring is over the threshold, so the
    docs/model.md rule (cells_per_iteration 0) breaks the whole ring at once. The
    lattice cascade (1 cell, then re-solve) breaks the most loaded cell; the
    stress concentrates at its outer end and the next cell there breaks: a
    radial crack, as from a pressurised borehole (Hubbert & Willis 1957), that
    grows unstably at the fixed pressure. Measured over the cells whose
    midpoints lie within h of the pore (63 on this mesh): the batch rule
    breaks all of them; the cascade only where its cracks start (two
    opposite cracks, each 2-3 cells across the band, plus the few cells
    that the P1 stress, 0.6-1.1 p at the curved face, overloads first:
    measured 10 of 63), so at most a quarter; its damage reaches 4 R from
    the centre (measured: the box edge, 20 um, after 120 cells)."""
    R, h = 2.0, 0.5
    ring_frac, reach = [], []
    for batch in (0, 1):
        mp, fp, r, _ = pressurised_pore(comm, batch, R=R, h=h)
        ring = r < R + h
        mp.solve(1.0)
        fp.update_history()
        p = 1.05 / comm.allreduce(fp.Dtilde.x.array[fp._qdofs[: fp.ncell_owned]][ring].min(), op=MPI.MIN)
        for _ in range(120):
            mp.solve(p)
            fp.update_history()
            before = comm.allreduce(int(broken(fp).sum()), op=MPI.SUM)
            fp.solve()
            after = comm.allreduce(int(broken(fp).sum()), op=MPI.SUM)
            if after == before or batch == 0:
                break
        b = broken(fp)
        ring_frac.append(comm.allreduce(int(b[ring].sum()), op=MPI.SUM) / comm.allreduce(int(ring.sum()), op=MPI.SUM))
        reach.append(comm.allreduce(float(r[b].max()) if b.any() else 0.0, op=MPI.MAX))
    assert ring_frac[0] == 1.0
    assert 0.0 < ring_frac[1] <= 0.25, ring_frac
    assert reach[1] >= 4 * R, reach
