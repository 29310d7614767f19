"""Derived parameters and consistency checks, before any heavy work.

No DOLFINx here: ``solver check`` and the start of ``solver run`` use it.
"""

from __future__ import annotations

import math

from .config import Config, short
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
        "h_over_l": finest_h(cfg.mesh) / fr.length_scale,
    }


def finest_h(mesh) -> float:
    """The finest cell size [m]: h_fine (or h), halved mesh.adapt.levels times
    where the adaptive mesh refines (not below mesh.adapt.h_min)."""
    h = mesh.h_fine or mesh.h
    if mesh.adapt.enabled:
        h = max(h / 2 ** mesh.adapt.levels, mesh.adapt.h_min or 0.0)
    return h


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


def _show(value) -> str:
    """A constant or a schedule's points, short."""
    return short(value.points if hasattr(value, "points") else value, 60)


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
    if m.grains is not None:
        grains = f"{m.grains} grain(s)"
    elif m.grain_size:
        grains = f"grains of {m.grain_size * 1e6:g} um mean diameter"
    else:
        grains = "1 grain"
    if m.kind == "rectangle":  # gmsh-free structured triangles, n x n squares split by diagonals
        ny = m.structured or max(2, int(round(m.height / m.h)))  # as mesh.domain.rectangle_domain
        nx = max(2, int(round(ny * m.width / m.height)))
        size = f"structured {nx} x {ny} squares ({m.diagonal} diagonals)"
    else:
        size = f"h = {m.h * 1e6:g} um" + (f", h_fine = {m.h_fine * 1e6:g} um" if m.h_fine else "")
    lines = [f"mesh: {m.kind} {m.dim}D, {m.width * 1e6:g} x {m.height * 1e6:g} um, {grains}, {size}"]
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
    problems.extend(physics_range_problems(cfg))
    problems.extend(option_problems(cfg))
    problems.extend(file_problems(cfg))
    if not problems:  # sizes only make sense once the geometry is valid
        problems.extend(size_problems(cfg))
    return problems


# --------------------------------------------------------------------------
# checks that 'mesh' or 'run' would otherwise only meet after heavy work
# --------------------------------------------------------------------------
EXP_ARGUMENT_LIMIT = 600.0  # exp(709) overflows a double; Butler-Volmer exponents must stay below this
TEMPERATURE_RANGE_K = (100.0, 2000.0)  # solid electrolytes are used between ~250 and ~700 K
# Memory a coupled run needs per mesh cell, a LOWER bound (5 fields on P1 triangles: about
# 4 DOFs per cell, the Jacobians (~60 nonzeros per node, 12 B each), AMG hierarchies, ghosts):
# a config above the machine's memory with this value cannot run on it.
BYTES_PER_CELL_MIN = 500.0
MAX_SIDECAR_BYTES = 50_000_000
MAX_LLOYD = 1000
MAX_SEEDS_FILE_BYTES = 50_000_000


def physics_range_problems(cfg: Config) -> list[str]:
    """Values the schema accepts one by one but the physics cannot evaluate
    (exp() overflow in Butler-Volmer, derived parameters that are not finite)."""
    out = []
    T = cfg.materials.temperature
    lo, hi = TEMPERATURE_RANGE_K
    if not lo <= T <= hi:
        out.append(f"materials.temperature = {T:g} K: outside {lo:g} K .. {hi:g} K (expected the cell's temperature "
                   "in kelvin, e.g. 298 K)")
        return out
    ec, el = cfg.electrochemistry, cfg.loading.electrical
    if ec.enabled and ec.model == "phase_field" and el.control != "none":
        vt = thermal_voltage(T, ec.charge_number)
        a = max(ec.transfer_coefficient, 1.0 - ec.transfer_coefficient)
        v = _peak(el.voltage) if el.control == "potentiostatic" else 0.0
        if el.control == "potentiostatic" and a * (v + abs(ec.equilibrium_potential)) / vt > EXP_ARGUMENT_LIMIT:
            vmax = EXP_ARGUMENT_LIMIT * vt / a - abs(ec.equilibrium_potential)
            out.append(f"loading.electrical.voltage = {v:g} V: |V| / (RT/nF) = {v / vt:.4g} at T = {T:g} K overflows "
                       f"the Butler-Volmer exponentials exp((1-alpha) nF eta / RT); expected |V| <= {vmax:.4g} V "
                       "(a cell voltage of a few volts at most)")
        if el.control == "galvanostatic":
            ratio = _peak(el.current_density) / ec.exchange_current_density
            if ratio > 0 and math.log(ratio) > EXP_ARGUMENT_LIMIT * min(ec.transfer_coefficient,
                                                                      1 - ec.transfer_coefficient):
                out.append(f"loading.electrical.current_density = {_peak(el.current_density):g} A/m^2: "
                           f"{ratio:.3g} x the exchange current density needs an overpotential whose "
                           "Butler-Volmer exponentials overflow; expected a current density closer to "
                           "electrochemistry.exchange_current_density")
    if out:
        return out
    try:
        derived = {}
        if ec.enabled and ec.model == "phase_field":
            derived.update(interface_parameters(cfg))
            par, perp = nernst_einstein_ratio(cfg)
            derived.update({"D/D_NE along": par, "D/D_NE across": perp})
        if cfg.fracture.enabled:
            derived.update(fracture_parameters(cfg))
    except (OverflowError, ZeroDivisionError, ValueError) as exc:
        return [f"materials/electrochemistry/fracture: the derived parameters cannot be computed ({exc}); "
                "expected physical magnitudes (see solver check's description)"]
    for k, v in derived.items():
        if not math.isfinite(v) or (v != 0.0 and not 1e-200 < abs(v) < 1e200):
            out.append(f"derived parameter {k} = {v:g}: not a representable physical value (a config value is "
                       "many orders of magnitude off; expected SI magnitudes, e.g. E ~ 1e11 Pa, delta ~ 1e-6 m)")
    return out


def option_problems(cfg: Config) -> list[str]:
    """Combinations that would be ignored silently or fail later in 'run'."""
    out = []
    el = cfg.loading.electrical
    model = cfg.electrochemistry.model if cfg.electrochemistry.enabled else None
    if model == "phase_field":
        if el.control == "potentiostatic" and el.current_density is not None:
            out.append(f"loading.electrical.current_density = {_show(el.current_density)} A/m^2: ignored under "
                       "control 'potentiostatic' (the cell voltage is imposed and the current is an output); "
                       "expected no current_density, or control 'galvanostatic'")
        if el.control == "galvanostatic" and el.voltage is not None:
            out.append(f"loading.electrical.voltage = {_show(el.voltage)} V: ignored under control 'galvanostatic' "
                       "(the current is imposed and the cell voltage is an output); expected no voltage, or "
                       "control 'potentiostatic'")
    if model == "conduction" and el.voltage is None:
        out.append(f"loading.electrical.control = '{el.control}' with electrochemistry.model = 'conduction': the "
                   "conduction model imposes a voltage; expected loading.electrical.voltage")
    from meshes.build import FACET_TAGS

    mech = cfg.loading.mechanical
    names = ", ".join(FACET_TAGS)
    for key in ("boundary", "fixed"):
        v = getattr(mech, key)
        if v not in FACET_TAGS:
            out.append(f"loading.mechanical.{key} = {short(v)}: unknown boundary; expected one of {names}")
    if mech.type != "none" and mech.boundary == mech.fixed:
        out.append(f"loading.mechanical.boundary = {mech.fixed!r}: the same boundary as loading.mechanical.fixed; "
                   "expected the load and the support on different boundaries")
    if mech.type == "displacement":
        if len(mech.direction) != cfg.mesh.dim or not any(mech.direction):
            out.append(f"loading.mechanical.direction = {list(mech.direction)}: expected a nonzero vector of "
                       f"{cfg.mesh.dim} components (mesh.dim = {cfg.mesh.dim})")
    m = cfg.mesh
    for key, v in (("mesh.seed", m.seed), ("mesh.orientation.seed", m.orientation.seed)):
        if not 0 <= v < 2**63:
            out.append(f"{key} = {short(v)}: expected a random seed 0 <= seed < 2^63")
    if m.lloyd_iterations > MAX_LLOYD:
        out.append(f"mesh.lloyd_iterations = {m.lloyd_iterations}: expected at most {MAX_LLOYD} (a few tens "
                   "regularise a Voronoi tessellation)")
    if m.kind == "rectangle":
        if m.flaws:
            out.append(f"mesh.flaws: {len(m.flaws)} flaw(s) with mesh.kind = 'rectangle', which meshes no flaws; "
                       "expected kind 'voronoi', 'single_crystal' or 'bicrystal' (gmsh) for flaws")
        if m.dim == 3:
            out.append("mesh.dim = 3 with mesh.kind = 'rectangle' (2D only); expected kind 'voronoi' or "
                       "'single_crystal' in 3D")
        n, given = m.grains or 1, m.orientation.angles
        if m.orientation.mode == "given" and given is not None and len(given) != n:
            out.append(f"mesh.orientation.angles = {short(given)}: {len(given)} angle(s) for mesh.grains = {n}; "
                       "expected one angle per grain")
    return out


def file_problems(cfg: Config) -> list[str]:
    """The files a config names exist, are readable and parse."""
    import json
    from pathlib import Path

    m, out = cfg.mesh, []
    if m.kind == "file":
        p = Path(m.file)
        side = p.with_suffix(".json")
        if p.is_dir() or not p.exists():
            out.append(f"mesh.file = {short(m.file)}: {'a directory' if p.is_dir() else 'not found'} (expected a "
                       "mesh.msh written by 'solver mesh')")
        elif not side.is_file():
            out.append(f"mesh.file = {short(m.file)}: its sidecar {side.name} is missing beside it (expected the "
                       "mesh.json that 'solver mesh' writes with it)")
        else:
            try:
                with open(p, "rb") as fh:
                    head = fh.read(64)
                if not head.lstrip().startswith(b"$MeshFormat"):
                    out.append(f"mesh.file = {short(m.file)}: not a gmsh .msh file (expected it to start with "
                               "$MeshFormat)")
                if side.stat().st_size > MAX_SIDECAR_BYTES:
                    raise ValueError(f"larger than {MAX_SIDECAR_BYTES:,} bytes")
                rec = json.loads(side.read_bytes().decode("utf-8"))
                if not isinstance(rec, dict) or "dim" not in rec or "box" not in rec:
                    raise ValueError("no 'dim' and 'box'")
                if int(rec["dim"]) != m.dim:
                    out.append(f"mesh.dim = {m.dim}: the mesh file {short(m.file)} is {rec['dim']}D")
            except PermissionError:
                out.append(f"mesh.file = {short(m.file)}: not readable (permission denied)")
            except (OSError, ValueError, TypeError) as exc:
                out.append(f"mesh.file = {short(m.file)}: sidecar {side.name} is not a mesh record ({short(str(exc))}; "
                           "expected the mesh.json that 'solver mesh' writes)")
    if m.seeds_file:
        p = Path(m.seeds_file)
        if m.kind != "voronoi":
            out.append(f"mesh.seeds_file = {short(m.seeds_file)}: only used by mesh.kind = 'voronoi' (got "
                       f"'{m.kind}'); expected no seeds_file or kind 'voronoi'")
        elif p.is_dir() or not p.exists():
            out.append(f"mesh.seeds_file = {short(m.seeds_file)}: {'a directory' if p.is_dir() else 'not found'} "
                       "(expected a text file of seed points x y [z] in metres)")
        elif p.stat().st_size > MAX_SEEDS_FILE_BYTES:
            out.append(f"mesh.seeds_file = {short(m.seeds_file)}: larger than {MAX_SEEDS_FILE_BYTES:,} bytes "
                       "(expected a text file of seed points)")
        else:
            from meshes.generate import _box, _seeds

            try:
                _seeds(m, _box(m), out)
            except PermissionError:
                out.append(f"mesh.seeds_file = {short(m.seeds_file)}: not readable (permission denied)")
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                out.append(f"mesh.seeds_file = {short(m.seeds_file)}: not a table of numbers ({short(str(exc))})")
    return out


def estimate_cells(cfg: Config) -> tuple[int, str]:
    """(a lower bound of the mesh's cell count, how it was estimated); no gmsh."""
    import json
    from pathlib import Path

    m = cfg.mesh
    if m.kind == "rectangle":
        ny = m.structured if m.structured else max(2, int(round(m.height / m.h)))
        nx = max(2, int(round(ny * m.width / m.height)))
        per = 4 if m.diagonal == "crossed" else 2
        return nx * ny * per, f"structured {nx} x {ny} squares, {per} triangles each"
    if m.kind == "file":
        try:
            rec = json.loads(Path(m.file).with_suffix(".json").read_text())
            return int(rec.get("mesh", {}).get("elements", 0)), "the mesh file's record"
        except (OSError, ValueError, TypeError, AttributeError):
            return 0, "unknown"
    # gmsh: at least the cells of the coarse size h everywhere (h_fine only adds)
    if m.dim == 2:
        return int(m.width * m.height / (math.sqrt(3) / 4 * m.h**2)), f"area / (sqrt(3)/4 h^2), h = {m.h:g} m"
    return (int(m.width * m.height * m.depth * 6 * math.sqrt(2) / m.h**3),
            f"volume / (h^3 / (6 sqrt 2)), h = {m.h:g} m")


def machine_memory() -> int | None:
    """Physical memory of this machine [bytes] (None if unknown)."""
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def size_problems(cfg: Config, memory: int | None = None) -> list[str]:
    """Element count and memory against the machine: refused when even a lower
    bound cannot fit (mesh.h = 1 nm on a 1 mm box, structured: 1000000)."""
    from meshes.generate import MAX_ELEMENTS

    m, out = cfg.mesh, []
    cells, how = estimate_cells(cfg)
    key = "mesh.structured" if (m.kind == "rectangle" and m.structured) else "mesh.h"
    val = m.structured if key == "mesh.structured" else f"{m.h:g} m"
    if m.kind not in ("rectangle", "file") and cells > MAX_ELEMENTS:
        out.append(f"{key} = {val}: at least {cells:.3g} elements ({how}) on a {m.width:g} x {m.height:g} m box; "
                   f"expected at most {MAX_ELEMENTS:,} (a larger mesh.h)")
        return out
    memory = machine_memory() if memory is None else memory
    if memory and cells * BYTES_PER_CELL_MIN > memory:
        out.append(f"{key} = {val}: {cells:.3g} cells ({how}) need at least {cells * BYTES_PER_CELL_MIN / 1e9:.3g} GB, "
                   f"more than this machine's {memory / 1e9:.3g} GB; expected at most "
                   f"{int(memory / BYTES_PER_CELL_MIN):,} cells (a larger mesh.h or fewer cells per side)")
        return out
    if m.kind == "rectangle" and (m.grains or 1) > 1 and memory:
        need = cells * m.grains * 24.0  # nearest-seed search: a cells x grains distance table
        if need > memory / 2:
            out.append(f"mesh.grains = {m.grains} with mesh.kind = 'rectangle': the nearest-seed assignment of "
                       f"{cells:.3g} cells needs {need / 1e9:.3g} GB; expected fewer grains or kind 'voronoi'")
    return out


def warnings(cfg: Config) -> list[str]:
    """Things that run but deserve a look (h vs l, a lagging interface, flaw coupling)."""
    out = []
    if cfg.fracture.enabled and cfg.fracture.model != "damaged_domain":
        h = finest_h(cfg.mesh)
        if h > cfg.fracture.length_scale / 2:
            where = " (the finest adapted cell)" if cfg.mesh.adapt.enabled else ""
            out.append(f"mesh h = {h:g} m{where} > l/2 = {cfg.fracture.length_scale / 2:g} m: the crack band is under-resolved "
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
