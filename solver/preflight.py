"""Derived parameters and consistency checks, before any heavy work.

No DOLFINx here: ``solver check`` and the start of ``solver run`` use it.
"""

from __future__ import annotations

import math

from .config import Config
from .physics.parameters import bv_bracket, interface_parameters  # noqa: F401  (derived physics; re-exported)
from .scales import FARADAY, thermal_voltage


def fracture_parameters(cfg: Config) -> dict:
    """Gc = K_IC^2 (1 - nu^2)/E unless given; AT2 peak stress
    3 sqrt(3)/16 sqrt(E' Gc / l) with E' = E/(1 - nu^2) (plane strain)."""
    fr, el = cfg.fracture, cfg.materials.electrolyte
    E, nu = el.youngs_modulus, el.poisson_ratio
    Gc = fr.critical_energy_release_rate or fr.toughness**2 * (1 - nu**2) / E
    E_prime = E / (1 - nu**2)
    return {
        "Gc_J_m2": Gc,
        "at2_peak_stress_Pa": 3 * math.sqrt(3) / 16 * math.sqrt(E_prime * Gc / fr.length_scale),
        "h_over_l": (cfg.mesh.h_fine or cfg.mesh.h) / fr.length_scale,
    }


def nernst_einstein_ratio(cfg: Config) -> tuple[float, float]:
    """D / D_NE along and across the planes, D_NE = sigma RT / (n^2 F^2 c0)
    [-]. At 1 (docs/model.md) migration carries the whole current and c~ stays
    uniform; below 1 Na+ diffusion must carry the rest, c~ depletes ahead of
    the deposit and growth turns diffusion-limited (docs/studies/diffusion-limited.md; steady 1D profile c~ = k - (k - 1) exp(p (H - y)), k = D_NE / D)."""
    el, n = cfg.materials.electrolyte, cfg.electrochemistry.charge_number
    vt = thermal_voltage(cfg.materials.temperature, n)  # RT / (nF) [V]
    ne = vt / (n * FARADAY * el.na_concentration)  # D_NE / sigma [m^2/s per S/m]
    return (el.diffusivity_parallel / (ne * el.conductivity_parallel),
            el.diffusivity_perpendicular / (ne * el.conductivity_perpendicular))


def stall_pressure(cfg: Config, overpotential: float) -> float:
    """p = n F |eta| / Omega [Pa]: the deposit pressure at which plating stalls."""
    ec = cfg.electrochemistry
    return ec.charge_number * FARADAY * abs(overpotential) / cfg.materials.sodium.molar_volume


def _peak(value) -> float:
    """max |value| of a constant or a Schedule (SI)."""
    if value is None:
        return 0.0
    if hasattr(value, "points"):
        return max(abs(v) for _, v in value.points)
    return abs(value)


def interface_relaxation_ratio(cfg: Config) -> float:
    """L_sigma W / (L_eta |B|): how fast the diffuse interface relaxes to its
    tanh profile against how fast the Butler-Volmer term transforms it.
    |B| = |B(eta = -V)| at the peak cell voltage V (potentiostatic: all of it
    taken as plating overpotential, an upper bound) or
    i / i0 at the peak mean current density (galvanostatic). Measured on the
    planar front of E1 (delta = 0.2 um): speed / (1.5 delta L_eta |B|) =
    0.37, 0.52, 0.78, 0.99 at ratios 0.1, 0.3, 1, 3."""
    ec, el = cfg.electrochemistry, cfg.loading.electrical
    ip = interface_parameters(cfg)
    if el.control == "potentiostatic":
        f = ec.charge_number / ip["thermal_voltage_V"]
        B = abs(bv_bracket(-_peak(el.voltage), ec.transfer_coefficient, f))
    elif el.control == "galvanostatic":
        B = _peak(el.current_density) / ec.exchange_current_density
    else:
        return math.inf
    rate = ip["kinetic_coefficient_L_eta_1_s"] * B
    return math.inf if rate == 0.0 else ec.interface_mobility * ip["barrier_height_W_J_m3"] / rate


def describe(cfg: Config) -> list[str]:
    m = cfg.mesh
    lines = [
        f"mesh: {m.kind} {m.dim}D, {m.width * 1e6:g} x {m.height * 1e6:g} um, "
        f"grains {m.grains if m.grains is not None else ('from grain size ' + format(m.grain_size or 0, 'g') + ' m')}, "
        f"h = {m.h * 1e6:g} um" + (f", h_fine = {m.h_fine * 1e6:g} um" if m.h_fine else ""),
    ]
    fields = []
    if cfg.electrochemistry.enabled:
        fields += ["phi"] if cfg.electrochemistry.model == "conduction" else ["xi", "c", "phi"]
    if cfg.mechanics.enabled and cfg.electrochemistry.model != "conduction":
        fields.append("u")
    if cfg.fracture.enabled and cfg.electrochemistry.model != "conduction":
        fields.append("d")
    lines.append(f"fields: {', '.join(fields) or 'none'}")
    if cfg.electrochemistry.enabled and cfg.electrochemistry.model == "phase_field":
        ip = interface_parameters(cfg)
        lines.append("interface: " + ", ".join(f"{k} = {v:.4g}" for k, v in ip.items()))
        par, perp = nernst_einstein_ratio(cfg)
        if min(par, perp) < 0.95:
            regime = "below Nernst-Einstein: c~ depletes ahead of the deposit, diffusion-limited growth"
        elif max(par, perp) > 1.05:
            regime = "above Nernst-Einstein: c~ rises ahead of the deposit"
        else:
            regime = "Nernst-Einstein: c~ stays uniform"
        lines.append(f"transport: D / (sigma RT / (F^2 c0)) = {par:.3g} along, {perp:.3g} across the planes ({regime})")
    if cfg.fracture.enabled:
        fp = fracture_parameters(cfg)
        lines.append(f"fracture ({cfg.fracture.model}): " + ", ".join(f"{k} = {v:.4g}" for k, v in fp.items()))
    lines.append(f"time: t_end = {cfg.time.t_end:g} s, dt = {cfg.time.dt:g} s")
    lines.append(f"config hash {cfg.config_hash()}, physics hash {cfg.physics_hash()}")
    return lines


def cross_check(cfg: Config) -> list[str]:
    """Problems that involve several sections (ConfigError lines)."""
    problems = []
    ec, mech, fr = cfg.electrochemistry, cfg.mechanics, cfg.fracture
    coupled = not (ec.enabled and ec.model == "conduction")
    if coupled and fr.enabled and not mech.enabled:
        problems.append("fracture.enabled = true: needs mechanics.enabled = true (stress drives fracture)")
    if cfg.mechanics.stiffness_mixing == "reuss" and cfg.materials.electrolyte.stiffness != "isotropic":
        problems.append("mechanics.stiffness_mixing = 'reuss': needs materials.electrolyte.stiffness = 'isotropic' "
                        f"(got '{cfg.materials.electrolyte.stiffness}'); use 'voigt' with a transverse stiffness")
    if coupled and not ec.enabled and not mech.enabled:
        problems.append("electrochemistry.enabled and mechanics.enabled are both false: nothing to solve")
    if coupled and not ec.enabled and mech.enabled and cfg.loading.mechanical.type == "none":
        problems.append("loading.mechanical.type = 'none' with electrochemistry disabled: nothing loads the solid "
                        "(expected 'displacement' or 'pressure')")
    if (coupled and ec.enabled and ec.deposition_restriction == "damage" and ec.intact_deposition == 0.0
            and cfg.loading.electrical.control == "galvanostatic"):
        problems.append("electrochemistry.deposition_restriction = 'damage' with intact_deposition = 0 and "
                        "loading.electrical.control = 'galvanostatic': chi = d is 0 everywhere at t = 0 (no cell is "
                        "damaged yet), so no interface can carry the imposed current; expected intact_deposition > 0, "
                        "'metal' (chi = max(d, xi)) or 'none', or potentiostatic control")
    if cfg.time.dt_max is not None and cfg.time.dt_max < cfg.time.dt:
        problems.append(f"time.dt_max = {cfg.time.dt_max:g}: smaller than time.dt = {cfg.time.dt:g}; expected dt <= dt_max")
    if cfg.mesh.kind == "rectangle" and cfg.mesh.h > cfg.mesh.height / 2:
        problems.append(f"mesh.h = {cfg.mesh.h:g}: larger than half the box height ({cfg.mesh.height:g} m); expected a finer mesh")
    if cfg.mesh.kind != "rectangle" and cfg.mesh.kind != "file":
        from meshes.generate import check as mesh_check  # geometry only: no gmsh, no DOLFINx

        problems.extend(mesh_check(cfg.mesh)[0])
    return problems


def warnings(cfg: Config) -> list[str]:
    """Things that run but deserve a look (h vs l, a lagging interface, flaw coupling)."""
    out = []
    if cfg.fracture.enabled and cfg.fracture.model != "damaged_domain":
        h = cfg.mesh.h_fine or cfg.mesh.h
        if h > cfg.fracture.length_scale / 2:
            out.append(f"mesh h = {h:g} m > l/2 = {cfg.fracture.length_scale / 2:g} m: the crack band is under-resolved "
                       "(docs/model.md asks h <= l/5)")
    batch = cfg.fracture.damaged_domain.cells_per_iteration
    if batch and cfg.fracture.enabled and cfg.fracture.model != "damaged_domain":
        out.append(f"fracture.damaged_domain.cells_per_iteration = {batch}: only used by fracture.model = "
                   f"'damaged_domain' (got '{cfg.fracture.model}'); ignored")
    elif batch and cfg.fracture.enabled and cfg.solver.stagger.fracture_iterations == 1:
        out.append(f"fracture.damaged_domain.cells_per_iteration = {batch} with solver.stagger.fracture_iterations "
                   "= 1: the cascade breaks one batch per stagger iteration, so how far it gets depends on "
                   "max_iterations and dt; expected fracture_iterations well above the cells a step breaks "
                   "(e.g. 300)")
    mech, ec = cfg.mechanics, cfg.electrochemistry
    if ec.enabled and ec.model == "phase_field":
        ratio = interface_relaxation_ratio(cfg)
        if ratio < 0.5:
            out.append(f"electrochemistry.interface_mobility = {ec.interface_mobility:g} m^3/(J s): the interface "
                       f"relaxes {1 / ratio:.3g} x slower than Butler-Volmer transforms it at the peak "
                       "loading.electrical value (L_sigma W / (L_eta |B|) = "
                       f"{ratio:.3g}); the front then moves at about half of 1.5 delta L_eta |B| or less (0.37 at "
                       "a ratio of 0.1): expected L_sigma W >= 3 L_eta |B|; raise it with "
                       "electrochemistry.anti_curvature = true, so that tips are not rounded faster (docs/known-limits.md"
                       ")")
    coupled = mech.enabled and ec.enabled and ec.stress_coupling
    filled = any(f.filled_with_na for f in cfg.mesh.flaws)
    griffith = cfg.fracture.enabled and cfg.fracture.model == "energy"  # a K_IC flaw check (the scenarios use 'stress')
    if coupled and filled and griffith and (ec.coupling_pressure == "mean" or mech.stiffness_mixing == "voigt"):
        out.append("Na-filled flaws with electrochemistry.coupling_pressure = "
                   f"'{ec.coupling_pressure}' and mechanics.stiffness_mixing = '{mech.stiffness_mixing}': the stall "
                   "pressure builds in the diffuse interface and the flaw's metal stays far below F |eta| / Omega "
                   "(docs/studies/na-filled-flaws.md); for Liu's flaw argument use 'normal', 'reuss' and "
                   "mechanics.displacement_degree = 2")
    if mech.enabled and mech.stiffness_mixing == "reuss" and mech.displacement_degree == 1:
        out.append("mechanics.stiffness_mixing = 'reuss' with displacement_degree = 1: P1 triangles lock in the "
                   "nearly incompressible mixture (K_Na / G_Na = 63); use displacement_degree = 2")
    return out
