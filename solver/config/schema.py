"""The run configuration: a YAML file validated by a pydantic v2 schema.

Every physical value is SI or a unit string ("300 MPa", "1 mA/cm^2"); the
schema converts it to an SI float. Unknown keys are errors (with a
did-you-mean). ``load_config`` reports every problem as one line naming the
key path, the value and what was expected. Nothing here imports DOLFINx, so
``python3 -m solver check`` is instant.

Coordinate convention (2D): the electrolyte occupies [0, width] x [0, height];
Na plates at the electrode y = 0 (``plating_electrode``) and the counter
electrode is y = height (``counter_electrode``).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .units import UnitError
from .units import to_si as _units_to_si

MAX_QUANTITY_CHARS = 100  # '300 MPa', '1 mA/cm^2': a longer string is no quantity (and slow to parse)


def to_si(value, dimension: str) -> float:
    """units.to_si with a bound on the string length (pint's parser is slow on huge strings)."""
    if isinstance(value, str) and len(value) > MAX_QUANTITY_CHARS:
        raise UnitError(f"expected a {dimension.replace('_', ' ')} such as '300 MPa' or a number; got a string "
                        f"of {len(value):,} characters")
    return _units_to_si(value, dimension)

SCHEMA_VERSION = 1
_NAME_RE = __import__("re").compile(r"[A-Za-z0-9._+=@,-]{1,200}")


# --------------------------------------------------------------------------
# Physical quantity types
# --------------------------------------------------------------------------
def _quantity(dimension: str):
    def parse(v):
        try:
            return to_si(v, dimension)
        except UnitError as exc:
            raise ValueError(str(exc)) from None

    return BeforeValidator(parse)


def Q(dimension: str, *, gt=None, ge=None, le=None, lt=None):
    """Annotated float in the SI unit of ``dimension`` (with optional bounds)."""
    from .units import DIMENSIONS

    unit = DIMENSIONS[dimension][0] or "1"
    return Annotated[
        float,
        _quantity(dimension),
        Field(gt=gt, ge=ge, le=le, lt=lt, json_schema_extra={"unit": unit, "dimension": dimension}),
    ]


Length = Q("length", gt=0)
Time = Q("time", gt=0)
Pressure = Q("pressure", gt=0)
Voltage = Q("voltage")
CurrentDensity = Q("current_density")
Angle = Q("angle")


class Section(BaseModel):
    """Base for all config sections: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=False, allow_inf_nan=False)


# A piecewise-linear schedule: [[t0, v0], [t1, v1], ...] (t in s, v in SI
# or with a unit, e.g. ['40 s', '0.2 V']), or a constant.
SchedulePoint = tuple[Annotated[float, _quantity("time")], Union[float, str]]


class Schedule(Section):
    """Piecewise-linear value vs time; constant after the last point."""

    points: list[SchedulePoint] = Field(
        description="[[time_s, value], ...], times strictly increasing"
    )

    def to_si(self, dimension: str, key: str) -> "Schedule":
        """Convert values given with units ('0.2 V') to SI floats in place."""
        pts = []
        for i, (t, v) in enumerate(self.points):
            try:
                pts.append((t, to_si(v, dimension)))
            except UnitError as exc:
                raise ValueError(f"{key}.points[{i}][1] = {v!r}: {exc}") from None
        self.points = pts
        return self

    @model_validator(mode="after")
    def _increasing(self):
        ts = [p[0] for p in self.points]
        if not ts:
            raise ValueError("expected at least one [time, value] point")
        if any(b <= a for a, b in zip(ts, ts[1:])):
            raise ValueError(f"expected strictly increasing times, got {ts}")
        return self


# --------------------------------------------------------------------------
# mesh
# --------------------------------------------------------------------------
class Flaw(Section):
    """A flaw cut out of (or marked in) the electrolyte.

    ``notch``/``slot``: a rectangular slot with a round tip starting at the
    plating electrode; ``crack``: a thin slot anywhere; ``ellipse``/``pore``:
    an elliptical hole. ``filled_with_na``: the flaw is meshed and starts as Na
    metal instead of being a hole.
    """

    type: Literal["notch", "slot", "crack", "ellipse", "pore"]
    center: Optional[tuple[Annotated[float, _quantity("length")], Annotated[float, _quantity("length")]]] = Field(
        None, description="(x, y) of the flaw centre [m]; notches: (x, 0) at the electrode"
    )
    length: Length = Field(description="length (notch: depth into the electrolyte) [m]")
    width: Length = Field(description="width (ellipse: minor axis) [m]")
    angle: Angle = Field(0.0, description="orientation of the long axis from the y axis (notch) or x axis [rad]")
    filled_with_na: bool = Field(False, description="mesh the flaw and start it as Na metal")


class Orientation(Section):
    mode: Literal["random", "stratified", "given"] = Field(
        "random", description="conduction-plane angles: random, stratified (isotropic for small N) or given"
    )
    angles: Optional[list[Annotated[float, _quantity("angle")]]] = Field(
        None, description="per-grain angles [rad] (mode 'given'); numbers are radians, '30 deg' works"
    )
    seed: int = Field(1, description="random seed of the orientation draw")
    axes: Optional[list[tuple[float, float, float]]] = Field(
        None, description="3D, mode 'given': per-grain c-axis vectors (normalised; sign-free)"
    )


class RefineBand(Section):
    """Rectangle [x0, x1] x [y0, y1] meshed with h_fine (where cracks will run)."""

    x0: Annotated[float, _quantity("length")]
    x1: Annotated[float, _quantity("length")]
    y0: Annotated[float, _quantity("length")]
    y1: Annotated[float, _quantity("length")]


class MeshAdapt(Section):
    """Adaptive mesh (docs/user/adaptivity.md): every ``every`` steps the base mesh
    (the one the other mesh keys build) is refined ``levels`` times around the Na
    interface, damage and steep c~, grown by ``margin``; fields are moved onto it."""

    enabled: bool = Field(False, description="adapt the mesh to the deposit and the cracks")
    every: int = Field(10, ge=1, description="remesh every this many accepted steps")
    levels: int = Field(2, ge=1, le=8, description="refinement levels of the base mesh (each halves h)")
    h_min: Optional[Length] = Field(None, description="no cell is refined below this longest edge [m] (default: levels decide)")
    margin: Annotated[float, _quantity("length"), Field(ge=0)] = Field(
        1e-6, description="grow the refined band by this distance [m] (a few interface widths)")
    xi_band: tuple[float, float] = Field((0.01, 0.99), description="xi between these: the diffuse interface, refined")
    damage_threshold: float = Field(0.05, gt=0, le=1, description="d above this is refined (1 disables)")
    history_threshold: float = Field(
        0.0, ge=0, description="refine where the fracture history H (the dimensionless driving force, "
        "d = H/(1+H) if homogeneous) exceeds this: the crack tip before the damage shows (0 disables)")
    max_redo: int = Field(0, ge=0, le=20, description="redo a step, up to this many times, on the base refined towards "
                          "its trial state when that state left the refined band (a crack running out within one step; "
                          "0: off)")
    refine_flaws: bool = Field(False, description="refine within margin of the flaw facets (notches, cracks, pores) "
                               "from t = 0, where cracks start before any damage")
    concentration_jump: float = Field(0.1, ge=0, description="refine where c~ changes more than this across a cell (0 disables)")
    max_dofs: Optional[int] = Field(None, ge=1, description="DOF budget: a level that would exceed it is not made (logged)")
    conserve_metal: bool = Field(True, description="put the metal volume int xi dx back after each transfer")

    @field_validator("xi_band")
    @classmethod
    def _band(cls, v):
        if not 0.0 < v[0] < v[1] < 1.0:
            raise ValueError(f"expected 0 < low < high < 1, got {list(v)}")
        return v


class MeshConfig(Section):
    kind: Literal["rectangle", "voronoi", "single_crystal", "bicrystal", "file"] = Field(
        "rectangle", description="geometry generator"
    )
    dim: Literal[2, 3] = Field(2, description="spatial dimension")
    width: Length = Field(20e-6, description="box size along x [m]")
    height: Length = Field(20e-6, description="box size along y, electrode to electrode [m]")
    depth: Length = Field(20e-6, description="box size along z (3D only) [m]")
    grains: Optional[int] = Field(None, ge=1, description="number of grains (or give grain_size)")
    grain_size: Optional[Length] = Field(None, description="mean grain diameter [m] (alternative to grains)")
    seed: int = Field(0, description="random seed of the Voronoi seeds")
    seeds_file: Optional[str] = Field(None, description="text file of seed points x y [z] in m (overrides random)")
    lloyd_iterations: int = Field(0, ge=0, description="Lloyd relaxation steps")
    min_edge: Optional[Annotated[float, _quantity("length"), Field(ge=0)]] = Field(
        None, description="collapse grain-boundary edges shorter than this [m] (default h_fine/2; 0 disables)"
    )
    orientation: Orientation = Field(default_factory=Orientation)
    h: Length = Field(1e-6, description="element size inside grains [m]")
    h_fine: Optional[Length] = Field(
        None, description="element size at grain boundaries, flaws and the refine band [m] (default h)"
    )
    refine_band: Optional[RefineBand] = None
    flaws: list[Flaw] = Field(default_factory=list)
    file: Optional[str] = Field(None, description="kind 'file': path to a mesh.msh with its mesh.json beside it")
    structured: Optional[int] = Field(
        None, ge=1, description="kind 'rectangle': cells per side of a structured mesh (default from h)"
    )
    diagonal: Literal["right", "left", "crossed", "right/left", "left/right"] = Field(
        "right", description="kind 'rectangle': how the squares are cut into triangles (DOLFINx DiagonalType); "
        "'crossed' (4 per square) has no preferred diagonal direction"
    )
    adapt: MeshAdapt = Field(default_factory=MeshAdapt)

    @model_validator(mode="after")
    def _consistent(self):
        if self.kind == "file" and not self.file:
            raise ValueError("kind 'file' needs 'file': the path of a mesh.msh")
        if self.kind == "voronoi" and self.grains is None and self.grain_size is None and not self.seeds_file:
            raise ValueError("kind 'voronoi' needs 'grains', 'grain_size' or 'seeds_file'")
        if self.grains is not None and self.grain_size is not None:
            raise ValueError("give 'grains' or 'grain_size', not both")
        if self.h_fine is not None and self.h_fine > self.h:
            raise ValueError(f"h_fine = {self.h_fine:g} m is larger than h = {self.h:g} m; expected h_fine <= h")
        if self.orientation.mode == "given" and not (self.orientation.angles or (self.dim == 3 and self.orientation.axes)):
            raise ValueError("orientation.mode 'given' needs orientation.angles (one per grain; 3D: orientation.axes)")
        return self


# --------------------------------------------------------------------------
# materials
# --------------------------------------------------------------------------
class Electrolyte(Section):
    """Beta''-alumina. Stiffness isotropic by default; 'transverse' is
    transversely isotropic about the c-axis m (plane normal)."""

    youngs_modulus: Pressure = Field(200e9, description="E [Pa] (isotropic, or in-plane for 'transverse')")
    poisson_ratio: Annotated[float, Field(gt=-1.0, lt=0.5)] = Field(0.22, description="nu [-]")
    stiffness: Literal["isotropic", "transverse"] = "isotropic"
    youngs_modulus_c: Optional[Pressure] = Field(None, description="E along the c-axis [Pa] ('transverse')")
    shear_modulus_c: Optional[Pressure] = Field(None, description="G in planes containing c [Pa] ('transverse')")
    poisson_ratio_c: Optional[Annotated[float, Field(gt=-1.0, lt=0.5)]] = Field(None, description="nu_ca [-]")
    conductivity_parallel: Q("conductivity", gt=0) = Field(1.0, description="ionic conductivity along the planes [S/m]")
    conductivity_perpendicular: Q("conductivity", gt=0) = Field(0.01, description="across the planes [S/m]")
    diffusivity_parallel: Q("diffusivity", gt=0) = Field(3e-11, description="Na+ D along the planes [m^2/s]")
    diffusivity_perpendicular: Q("diffusivity", gt=0) = Field(3e-13, description="Na+ D across the planes [m^2/s]")
    na_concentration: Q("concentration", gt=0) = Field(9.0e3, description="c0, Na+ in beta'' [mol/m^3]")

    @model_validator(mode="after")
    def _transverse(self):
        if self.stiffness == "transverse":
            missing = [k for k in ("youngs_modulus_c", "shear_modulus_c", "poisson_ratio_c") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"stiffness 'transverse' needs {', '.join(missing)}")
        return self


class Sodium(Section):
    """Na metal: a soft elastic solid that transmits pressure (creep)."""

    bulk_modulus: Pressure = Field(6.3e9, description="K_Na [Pa]")
    shear_modulus: Pressure = Field(0.1e9, description="G_Na [Pa] (small: creep)")
    molar_volume: Q("molar_volume", gt=0) = Field(23.7e-6, description="Omega = V_m [m^3/mol]")
    conductivity_ratio: Annotated[float, Field(gt=0.0)] = Field(
        1.0e3, description="sigma_Na / sigma_SE,parallel in sigma_eff = h sigma_Na + (1 - h) sigma_SE [-] "
        "(docs/model.md: 1e3-1e4, capped for conditioning). phi is the electrolyte's potential (the metal is "
        "grounded), so a large ratio makes the diffuse interface a conducting sheet that shorts phi along the "
        "front: a perturbed front then does not grow. 1 keeps the tip focusing of a sharp interface "
        "(docs/studies/laplacian-growth.md)"
    )
    diffusivity_ratio: Optional[Annotated[float, Field(gt=0.0)]] = Field(
        None,
        description="D_Na / D_SE,parallel [-]; default conductivity_ratio (Nernst-Einstein consistent: "
        "then c~ stays uniform wherever D/sigma is uniform)",
    )


class Materials(Section):
    temperature: Q("temperature", gt=0) = Field(298.0, description="T [K]")
    electrolyte: Electrolyte = Field(default_factory=Electrolyte)
    sodium: Sodium = Field(default_factory=Sodium)


# --------------------------------------------------------------------------
# electrochemistry
# --------------------------------------------------------------------------
class InitialNa(Section):
    """Initial Na metal: an electrode layer, a nucleus, or fill the flaws."""

    type: Literal["layer", "circle", "ellipse", "flaws"]
    thickness: Optional[Length] = Field(None, description="'layer': thickness on the plating electrode [m]")
    amplitude: Annotated[float, _quantity("length"), Field(ge=0.0)] = Field(
        0.0, description="'layer': the thickness becomes thickness + amplitude cos(2 pi x / wavelength) [m]")
    wavelength: Optional[Length] = Field(None, description="'layer': wavelength of that perturbation [m]")
    center: Optional[tuple[Annotated[float, _quantity("length")], Annotated[float, _quantity("length")]]] = None
    radius: Optional[Length] = Field(None, description="'circle' radius / 'ellipse' semi-axis a [m]")
    radius_b: Optional[Length] = Field(None, description="'ellipse' semi-axis b [m]")
    angle: Angle = Field(0.0, description="'ellipse' rotation of axis a from x [rad]")

    @model_validator(mode="after")
    def _needs(self):
        need = {"layer": ["thickness"], "circle": ["center", "radius"], "ellipse": ["center", "radius", "radius_b"], "flaws": []}
        missing = [k for k in need[self.type] if getattr(self, k) is None]
        if missing:
            raise ValueError(f"initial Na of type '{self.type}' needs {', '.join(missing)}")
        if self.amplitude > 0.0 and (self.type != "layer" or self.wavelength is None):
            raise ValueError(f"initial Na amplitude = {self.amplitude:g} m needs type 'layer' and a wavelength "
                             f"(got type '{self.type}', wavelength {self.wavelength})")
        return self


class Electrochemistry(Section):
    enabled: bool = Field(True, description="solve the electrochemistry fields")
    model: Literal["conduction", "phase_field"] = Field(
        "phase_field",
        description="'conduction': potential only, div(sigma grad phi) = 0; 'phase_field': xi, c, phi by Newton",
    )
    charge_number: int = Field(1, ge=1, description="n [-]")
    transfer_coefficient: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(0.5, description="alpha [-]")
    exchange_current_density: Q("current_density", gt=0) = Field(26.0, description="i0 [A/m^2]")
    interface_energy: Q("energy_per_area", gt=0) = Field(0.2, description="gamma [J/m^2]")
    interface_width: Length = Field(1e-6, description="delta [m]")
    interface_mobility: Q("mobility", gt=0) = Field(2.5e-6, description="L_sigma [m^3/(J s)]")
    equilibrium_potential: Voltage = Field(0.0, description="E0 [V]")
    crack_enhancement: Annotated[float, Field(ge=1.0)] = Field(10.0, description="k_D: D, sigma x k_D in cracks [-]")
    deposition_restriction: Literal["none", "damage", "metal"] = Field(
        "none", description="chi(d, xi): where Na may deposit: 'none' chi = 1; 'damage' chi = e + (1 - e) d; "
        "'metal' chi = max(e + (1 - e) d, xi), e = intact_deposition"
    )
    intact_deposition: Annotated[float, Field(ge=0.0, le=1.0)] = Field(
        0.0, description="e: chi in intact, metal-free electrolyte under deposition_restriction 'damage' or "
        "'metal' [-]. 0: Na plates only into damage (or metal); 0 < e << 1: it also plates slowly into the intact "
        "lattice, which pressurises a confined deposit until it cracks, then fills the crack at the full rate"
    )
    exchange_current_ratio: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        1.0, description="r: i0 of an interface parallel to the conduction planes over i0 of one that cuts "
        "them [-]. 1: isotropic kinetics (docs/model.md). r < 1: i0(n) = i0 [r + (1 - r) n.(I - m m).n], n the "
        "interface normal, m the plane normal: Na+ leaves the electrolyte into the metal along its planes, so "
        "the deposit advances along the conduction planes of each grain (r ~ sigma_perp / sigma_par = 0.01)",
    )
    anti_curvature: bool = Field(
        False, description="Remove the curvature-driven motion of the Allen-Cahn term (Sun & Beckermann 2007): "
        "d xi/dt gains -L_sigma kappa |grad xi|_0 div n, |grad xi|_0 = (4/delta) xi (1 - xi) the equilibrium "
        "profile slope, n = grad xi / |grad xi| of the previous step. L_sigma then only keeps the profile relaxed "
        "and may be raised without rounding tips (physical Gibbs-Thomson, gamma Omega / (nF R) ~ 0.2 mV at "
        "R = 0.3 um, is neglected)",
    )
    stress_coupling: bool = Field(True, description="eta_eff = eta_a + Omega p / (nF)")
    coupling_pressure: Literal["mean", "normal"] = Field(
        "mean",
        description="p in eta_eff: 'mean' = -tr(sigma)/3 (docs/model.md); 'normal' = max(0, -n.sigma.n) with n = "
        "grad xi / |grad xi|, the compressive traction on the deposit interface (continuous across it, so the "
        "diffuse interface sees the metal's pressure, not the hoop stress of the part-converted shell; the mean "
        "pressure where |grad xi| << 1/delta). Use 'normal' with mechanics.stiffness_mixing = reuss and "
        "displacement_degree = 2 for Na-filled flaws (docs/studies/na-filled-flaws.md)",
    )
    plating_electrode: Literal["blocking", "reactive"] = Field(
        "blocking",
        description="blocking: no Na+ flux through y = 0 (Na+ leaves the electrolyte only into xi); "
        "reactive: Butler-Volmer current through the bare electrolyte/anode interface at y = 0, "
        "i_b = -i0 [exp((1-alpha) f eta_a) - c~ exp(-alpha f eta_a)] (1 - h(xi)), eta_a = -phi - E0 "
        "(no stress term: the anode is free); the plated Na joins the anode outside the domain",
    )
    anode_exchange_current_density: Q("current_density", gt=0) | None = Field(
        None,
        description="i0 of the bare anode interface (reactive plating_electrode) [A/m^2]; default: "
        "exchange_current_density. A lower value models the interfacial resistance of a poorly wetted "
        "Na/electrolyte contact (R_int = RT/(F i0) at small overpotential)",
    )
    anisotropy_strength: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        0.0, description="delta_a in kappa(n) = kappa0 [1 + delta_a cos(omega (theta_n - theta_g))], theta_n the "
        "angle of the interface normal, theta_g that of the grain's conduction planes (2D) [-]; below the value at "
        "which the interface stiffness gamma + gamma'' turns negative (gamma ~ sqrt(kappa))",
    )
    anisotropy_mode: int = Field(4, ge=1, description="omega, fold of the interface anisotropy [-]")
    concentration_ratio: Annotated[float, Field(gt=0.0)] = Field(
        1.0, description="c~ = c/c0 initially and at the counter electrode (Na+ reservoir) [-]"
    )
    initial_na: list[InitialNa] = Field(default_factory=list)

    @model_validator(mode="after")
    def _stiffness(self):
        if self.anisotropy_strength > 0.0:
            lim = max_anisotropy_strength(self.anisotropy_mode)
            if self.anisotropy_strength >= lim:
                raise ValueError(
                    f"anisotropy_strength = {self.anisotropy_strength:g} with anisotropy_mode = "
                    f"{self.anisotropy_mode} makes the interface stiffness gamma + gamma'' negative (missing "
                    f"orientations, an ill-posed xi equation); expected anisotropy_strength < {lim:.4g}")
            if self.anti_curvature:
                raise ValueError("anisotropy_strength > 0 with anti_curvature = true: the anti-curvature term "
                                 "removes the isotropic kappa0 curvature flow only; expected one of the two")
        return self


def interface_stiffness(delta_a: float, omega: int, theta: np.ndarray) -> np.ndarray:
    """gamma + gamma'' over gamma0 for gamma = gamma0 sqrt(1 + delta_a cos(omega theta))
    (kappa ~ gamma^2 at fixed width-energy product W kappa)."""
    s = 1.0 + delta_a * np.cos(omega * theta)
    s1 = -delta_a * omega * np.sin(omega * theta)
    s2 = -delta_a * omega**2 * np.cos(omega * theta)
    return np.sqrt(s) + 0.5 * s2 / np.sqrt(s) - 0.25 * s1**2 / s**1.5


def max_anisotropy_strength(omega: int) -> float:
    """The delta_a (< 1) at which min_theta (gamma + gamma'') reaches 0."""
    theta = np.linspace(0.0, 2.0 * np.pi, 4001)
    lo, hi = 0.0, 1.0 - 1e-9
    if interface_stiffness(hi, omega, theta).min() > 0.0:
        return 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if interface_stiffness(mid, omega, theta).min() > 0.0 else (lo, mid)
    return lo


# --------------------------------------------------------------------------
# mechanics
# --------------------------------------------------------------------------
class Mechanics(Section):
    enabled: bool = Field(True, description="solve for the displacement")
    split: Literal["volumetric_deviatoric", "spectral", "none"] = Field(
        "volumetric_deviatoric", description="tension/compression split of the strain energy"
    )
    eigenstrain: Annotated[float, Field(ge=0.0)] = Field(0.2, description="eps_v, deposition volume strain [-]")
    eigenstrain_onset: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        0.0,
        description="xi_e: the deposit expands as h((xi - xi_e) / (1 - xi_e)) instead of h(xi), so the dilute tail "
        "of the diffuse interface (xi < xi_e) carries no eigenstrain; 0 = docs/model.md",
    )
    stiffness_mixing: Literal["voigt", "reuss"] = Field(
        "voigt",
        description="stiffness across the metal/electrolyte interface: 'voigt' C = h C_Na + (1-h) C_SE (docs/model.md); "
        "'reuss' 1/K = h/K_Na + (1-h)/K_SE, 1/G likewise (isotropic electrolyte only): a partly transformed "
        "cell is nearly as soft as the metal, so more of the deposit's pressure reaches the metal inside a "
        "flaw; with P1 displacements the nearly incompressible mixture locks (pressure checkerboard, runaway "
        "plating): use displacement_degree = 2 (docs/studies/na-filled-flaws.md)",
    )
    displacement_degree: Literal[1, 2] = Field(
        1, description="Lagrange degree of u; 2 avoids the volumetric locking of P1 triangles in nearly "
        "incompressible Na (K_Na/G_Na = 63), whose pressure otherwise checkerboards at the deposit interface")
    residual_stiffness: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(1e-6, description="k_res [-]")
    constraint: Literal["plane_strain"] = "plane_strain"
    newton_rtol: Annotated[float, Field(gt=0, lt=1)] = Field(
        1e-8, description="relative residual tolerance of the Newton loop (needed by the nonlinear splits)"
    )
    max_newton_iterations: int = Field(30, ge=1, description="Newton iterations per mechanics solve")
    newton_accept_residual: Annotated[float, Field(gt=0, lt=1)] | None = Field(
        None,
        description="after max_newton_iterations, accept the solve if the relative residual is below this "
        "(logged) instead of failing; None: fail. Near a kink of the split (broken cells at tr eps = 0) Newton "
        "can stall a little above newton_rtol; the stagger's tol_u still checks the final residual",
    )


# --------------------------------------------------------------------------
# fracture
# --------------------------------------------------------------------------
class DamagedDomain(Section):
    threshold: Pressure = Field(30e6, description="sigma_m0 along the conduction planes [Pa]")
    threshold_ratio: Annotated[float, Field(ge=1.0)] = Field(
        10.0, description="threshold across / along the planes [-]"
    )
    modulus_factor: Annotated[float, Field(gt=0.0, le=1.0)] = Field(1e-4, description="E x this in damaged cells")
    cells_per_iteration: int = Field(
        0, ge=0,
        description="break at most this many cells per fracture update, those with the largest sigma_1 / sigma_m0 "
        "of the current stress (a lattice-model cascade: with stagger.fracture_iterations > 1 the mechanics is "
        "re-solved after each batch, so a broken cell can unload its neighbours); 0 = every cell whose history "
        "reached the threshold (docs/model.md)",
    )


class Fracture(Section):
    enabled: bool = Field(True, description="solve for the fracture phase field d")
    model: Literal["energy", "stress", "damaged_domain"] = Field("stress", description="crack driving force")
    length_scale: Length = Field(0.5e-6, description="l [m]; need h <= l/5 in the crack band")
    toughness: Q("toughness", gt=0) = Field(2.0e6, description="K_IC [Pa m^0.5] (gives Gc if Gc is not set)")
    critical_energy_release_rate: Optional[Q("energy_per_area", gt=0)] = Field(
        None, description="Gc [J/m^2]; default K_IC^2 (1 - nu^2) / E"
    )
    strength_bulk: Pressure = Field(300e6, description="sigma_b [Pa]")
    strength_plane: Pressure = Field(30e6, description="sigma_cp, normal strength of the conduction planes [Pa]")
    shear_strength_plane: Optional[Pressure] = Field(None, description="tau_cp [Pa] (default sigma_cp)")
    strength_grain_boundary: Pressure = Field(30e6, description="sigma_gb [Pa]")
    slope: Annotated[float, Field(gt=0.0)] = Field(1.0, description="zeta [-]")
    structural_tensor: Annotated[float, Field(ge=0.0)] = Field(0.0, description="beta_c in B = I + beta_c a a [-]")
    damaged_domain: DamagedDomain = Field(default_factory=DamagedDomain)


# --------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------
ScalarOrSchedule = Union[float, Schedule]


class Electrical(Section):
    """Electrode control. Potentiostatic: the cell voltage is imposed
    (constant or schedule); galvanostatic: the mean current density is
    imposed and the cell voltage is an output."""

    control: Literal["potentiostatic", "galvanostatic", "none"] = "potentiostatic"
    voltage: Optional[Union[Annotated[float, _quantity("voltage")], Schedule]] = Field(
        None, description="cell voltage [V] (counter minus plating electrode), constant or schedule"
    )
    current_density: Optional[Union[Annotated[float, _quantity("current_density")], Schedule]] = Field(
        None, description="plating current density [A/m^2], constant or schedule (negative: stripping)"
    )

    @model_validator(mode="after")
    def _needs(self):
        for key, dim in (("voltage", "voltage"), ("current_density", "current_density")):
            if isinstance(getattr(self, key), Schedule):
                getattr(self, key).to_si(dim, key)
        if self.control == "potentiostatic" and self.voltage is None:
            raise ValueError("control 'potentiostatic' needs 'voltage'")
        if self.control == "galvanostatic" and self.current_density is None:
            raise ValueError("control 'galvanostatic' needs 'current_density'")
        return self


class MechanicalLoad(Section):
    """Mechanical loading for standalone mechanics/fracture runs."""

    type: Literal["none", "displacement", "pressure"] = "none"
    boundary: str = Field("counter_electrode", description="facet tag name where the load acts")
    fixed: str = Field("plating_electrode", description="facet tag name held fixed (u = 0)")
    support: Literal["clamped", "roller"] = Field(
        "clamped",
        description="'clamped': u = 0 on 'fixed' (and all components prescribed on a displaced 'boundary'); "
        "'roller': only the normal component on 'fixed' (plus one pinned point) and only the loaded "
        "components on 'boundary'",
    )
    direction: tuple[float, ...] = Field((0.0, 1.0), description="unit direction of the displacement")
    value: Optional[Union[float, str, Schedule]] = Field(
        None, description="displacement [m] or pressure [Pa], constant or schedule (units allowed: '0.1 um')"
    )

    @model_validator(mode="after")
    def _needs(self):
        dim = "pressure" if self.type == "pressure" else "length"
        if isinstance(self.value, Schedule):
            self.value.to_si(dim, "value")
        elif isinstance(self.value, str):
            try:
                self.value = to_si(self.value, dim)
            except UnitError as exc:
                raise ValueError(f"value = {self.value!r}: {exc}") from None
        if self.type != "none" and self.value is None:
            raise ValueError(f"mechanical load type '{self.type}' needs 'value'")
        return self


class Loading(Section):
    electrical: Electrical = Field(default_factory=lambda: Electrical(control="potentiostatic", voltage=0.1))
    mechanical: MechanicalLoad = Field(default_factory=MechanicalLoad)


# --------------------------------------------------------------------------
# time, solver, output
# --------------------------------------------------------------------------
class TimeConfig(Section):
    t_end: Time = Field(1.0, description="final time [s]")
    dt: Time = Field(0.01, description="initial time step [s]")
    dt_min: Time = Field(1e-8, description="stop with status 'failed' below this [s]")
    dt_max: Optional[Time] = Field(None, description="largest time step [s] (default t_end)")
    growth: Annotated[float, Field(ge=1.0)] = Field(1.5, description="dt x this after an easy step")
    cutback: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(0.5, description="dt x this after a failed step")
    bound_growth: Annotated[float, Field(ge=0.0)] = Field(
        1.02, description="after a step of h whose solve failed the next steps stay below 0.8 h, a bound that grows by "
        "this factor per accepted step (the controller stops growing dt into the size that just failed; steps "
        "rejected by max_dxi / max_dd set no bound); 0: no bound")
    max_steps: int = Field(100000, ge=1)
    max_dxi: Annotated[float, Field(gt=0.0)] = Field(0.1, description="largest |dxi| per step [-]")
    max_dd: Annotated[float, Field(gt=0.0)] = Field(0.2, description="largest |dd| per step [-]")
    dxi_target: Optional[Annotated[float, Field(gt=0.0)]] = Field(
        None, description="steer dt by the metal's change per step: after each step dt = h target / max|dxi| "
        "(at most growth x h, and only up to h after a hard step; at least cutback x h), and a step rejected by "
        "max_dxi is retried at h target / max|dxi| (0.2-0.9 h) instead of cutback x h; at most max_dxi "
        "(docs/studies/coupling-cost.md). None: grow by growth after easy steps, cut by cutback")
    short_circuit_distance: Annotated[float, _quantity("length"), Field(ge=0)] = Field(
        0.0, description="short circuit when metal comes this close to the counter electrode [m]"
    )

    @model_validator(mode="after")
    def _order(self):
        if 0.0 < self.bound_growth < 1.0:
            raise ValueError(f"time.bound_growth = {self.bound_growth:g}: expected 0 (off) or >= 1")
        if self.dt_min > self.dt:
            raise ValueError(f"dt_min = {self.dt_min:g} s is larger than dt = {self.dt:g} s")
        if self.dxi_target is not None and self.dxi_target > self.max_dxi:
            raise ValueError(f"time.dxi_target = {self.dxi_target:g}: expected at most time.max_dxi = {self.max_dxi:g}")
        return self


PetscValue = Union[str, int, float, bool, None]


class Stagger(Section):
    max_iterations: int = Field(10, ge=1, description="N_stag")
    on_max_iterations: Literal["cutback", "accept"] = Field(
        "cutback",
        description="after N_stag iterations without convergence: 'cutback' (restore, cut dt) or 'accept' the "
        "step (logged, stagger_converged = 0 in scalars.csv) if max_dxi/max_dd hold; 'accept' suits "
        "crack growth that a smaller dt cannot slow down",
    )
    tol_d: Annotated[float, Field(gt=0)] = Field(1e-4, description="max |d_k - d_{k-1}| between stagger iterations")
    tol_xi: Annotated[float, Field(gt=0)] = Field(1e-3, description="max |xi_k - xi_{k-1}| between stagger iterations")
    tol_u: Annotated[float, Field(gt=0)] = Field(1e-6, description="relative mechanics residual")
    fracture_iterations: int = Field(
        1, ge=1,
        description="inner mechanics <-> fracture iterations per (F) stage, until max|dd| <= tol_d: resolves an "
        "unstable crack jump at fixed deposit within one step instead of letting it creep over many steps; "
        "1 = the plain M -> E -> F scheme of docs/model.md",
    )
    fracture_coupling: Literal["iterated", "lagged"] = Field(
        "iterated",
        description="monolithic coupling: 'iterated' solves the coupled Newton again after a fracture stage that "
        "changed d by more than tol_d (passes until d stays put); 'lagged' makes one pass per step (coupled Newton "
        "with the damage of the last step, then the fracture stage), so the step's damage reaches the "
        "electrochemistry and the deposit pressure one step later (first-order in dt, as Miehe's one-pass "
        "history scheme); the fracture stage still resolves a crack jump at the frozen deposit. Monolithic only "
        "(refused with coupling 'staggered'; a step retried by the staggered fallback iterates)",
    )
    relaxation: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0,
        description="omega: the coupling pressure handed to (E) in stagger iteration k > 1 is p_(k-1) + omega "
        "(p~_k - p_(k-1)), p~_k from (M); 1 = none (docs/model.md). The stress-coupled kinetics feed back with a gain "
        "g ~ -dt Omega^2 K eps_v i0 / (F R T delta) per iteration: below -1 the plain iteration oscillates "
        "(docs/studies/staggered-iteration.md)",
    )
    relaxation_method: Literal["fixed", "aitken"] = Field(
        "fixed",
        description="'fixed' omega, or 'aitken': omega_k = -omega_(k-1) r_(k-1).(r_k - r_(k-1)) / "
        "|r_k - r_(k-1)|^2 with r_k = p~_k - p_(k-1), clipped to [0.01, 1]; the first step starts from relaxation, "
        "each later one from the factor the last step ended with, carried to the new dt (g ~ dt), at most relaxation",
    )


class Newton(Section):
    rtol: Annotated[float, Field(gt=0, lt=1)] = Field(1e-8, description="relative residual tolerance")
    max_iterations: int = Field(25, ge=1)
    forcing: Literal["eisenstat_walker", "fixed"] = Field(
        "eisenstat_walker",
        description="Krylov tolerance of the coupled Newton (monolithic coupling): 'eisenstat_walker' "
        "(eta_k = 0.9 (|F_k|/|F_k-1|)^2, safeguarded, at most forcing_max) or 'fixed' (forcing_max)",
    )
    forcing_max: Annotated[float, Field(gt=0, lt=1)] = Field(
        1e-2, description="largest (and, with forcing 'fixed', the only) relative Krylov tolerance per Newton step")
    coupled_rtol: Annotated[float, Field(gt=0, lt=1)] = Field(
        1e-6, description="monolithic coupling: the electrochemistry residual must fall by this factor from the "
        "step's first residual (or its update below coupled_rtol), and the mechanics residual below "
        "coupled_rtol of its force scale (at least 100 mechanics.newton_rtol, at most stagger.tol_u); 1e-6 "
        "changed dendrite tip and voltage by < 1e-9 relative against 1e-8 with 25% fewer Newton iterations "
        "(coupled_constant_current, 20 steps); 1e-5 saved 16% of them on micro_single_grain (scalars within "
        "2e-7, docs/studies/coupling-cost.md)")
    lag_jacobian: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.0, description="monolithic coupling: reuse the Jacobian for the next Newton iteration after one that "
        "reduced the scaled residual by at least this factor (a chord step); 0 = assemble it every iteration")
    carry_jacobian: bool = Field(
        False, description="monolithic coupling, with lag_jacobian > 0: a step's first Newton iteration reuses the "
        "last step's Jacobian (and, with a direct solver, its factors) when that one's last iteration still reduced "
        "the residual by lag_jacobian and dt changed by less than 25%; convergence is judged on the residual as "
        "always (docs/studies/coupling-cost.md)")
    fallback: Literal["staggered", "none"] = Field(
        "staggered", description="monolithic coupling: a step whose coupled Newton fails is retried with the "
        "staggered scheme ('staggered') before dt is cut, or dt is cut at once ('none'); at specimen scale the "
        "staggered retry failed whenever the coupled Newton had (9 of 9, ~30 s each at 500k DOFs)")
    predictor: Literal["rate", "none"] = Field(
        "none", description="monolithic coupling, initial guess of a step: 'rate' takes xi_n + min(dt, dt_n) "
        "(dxi/dt)_n (the last step's metal rate, clipped to [0, 1]), 'none' the committed state. 'rate' saved "
        "40% of the Newton iterations on a phase-field polycrystal at dt_max and cost 6-10% where dt grows "
        "(docs/studies/coupling-cost.md)")
    reuse_preconditioner: bool = Field(
        True, description="keep the coupled preconditioner across Newton iterations and steps while the Krylov "
        "iterations stay within 3x of those after its last rebuild (monolithic coupling)")


class SolverConfig(Section):
    coupling: Literal["monolithic", "staggered"] = Field(
        "monolithic",
        description="'monolithic': one Newton for (u, xi, c~, phi) per step with the stress-kinetics coupling "
        "in the Jacobian, fracture staggered; 'staggered': mechanics, electrochemistry and fracture in turn "
        "until stagger.tol_* hold (the reference scheme)",
    )
    stagger: Stagger = Field(default_factory=Stagger)
    newton: Newton = Field(default_factory=Newton)
    petsc: dict[Literal["potential", "mechanics", "electrochemistry", "fracture", "coupled"], dict[str, PetscValue]] = Field(
        default_factory=dict,
        description="PETSc options per sub-solver, without prefix, e.g. {mechanics: {ksp_rtol: 1e-10}}",
    )

    @model_validator(mode="after")
    def _lagged_needs_monolithic(self):
        if self.coupling == "staggered" and self.stagger.fracture_coupling == "lagged":
            raise ValueError(
                "stagger.fracture_coupling = 'lagged' with coupling = 'staggered': the lagged fracture coupling is "
                "an option of the monolithic scheme (one coupled Newton, then the fracture stage); expected "
                "fracture_coupling 'iterated' with the staggered scheme, or coupling 'monolithic'")
        return self


class Output(Section):
    directory: Optional[str] = Field(None, description="output directory (default results/<name>); -o overrides")
    every: int = Field(1, ge=1, description="write fields.xdmf every N steps")
    checkpoint_every: int = Field(10, ge=1, description="write checkpoint/ every N steps")
    checkpoint_wall_time: Q("time", ge=0) = Field(
        900.0, description="also write checkpoint/ when this much wall-clock time has passed since the last "
                           "one, so that slow steps lose little to kill -9 or a node failure; 0 = off [s]")
    progress_every: int = Field(1, ge=1, description="progress line every N steps")


# --------------------------------------------------------------------------
# root
# --------------------------------------------------------------------------
class Config(Section):
    name: str = Field("run", description="run name; default output directory results/<name>")
    description: str = ""
    mesh: MeshConfig = Field(default_factory=MeshConfig)
    materials: Materials = Field(default_factory=Materials)
    electrochemistry: Electrochemistry = Field(default_factory=Electrochemistry)
    mechanics: Mechanics = Field(default_factory=Mechanics)
    fracture: Fracture = Field(default_factory=Fracture)
    loading: Loading = Field(default_factory=Loading)
    time: TimeConfig = Field(default_factory=TimeConfig)
    solver: SolverConfig = Field(default_factory=SolverConfig)
    output: Output = Field(default_factory=Output)

    @field_validator("name")
    @classmethod
    def _one_component(cls, v: str) -> str:
        # the name becomes results/<name>: it must not leave results/ ('../x', '/tmp/x')
        if not _NAME_RE.fullmatch(v) or v in (".", ".."):
            raise ValueError("expected a run name that is one path component of letters, digits and . _ - + = @ , "
                             "(not '.', '..', no '/'), at most 200 characters; it names the directory "
                             "results/<name>")
        return v

    @model_validator(mode="after")
    def _two_d_only(self):
        # --- options that exist only in 2D, refused in 3D (issue 25; docs/user/three-d.md) ---
        if self.mesh.dim != 3:
            return self
        problems = []
        ec, m = self.electrochemistry, self.mesh
        if ec.anisotropy_strength > 0.0:
            problems.append(
                f"electrochemistry.anisotropy_strength = {ec.anisotropy_strength:g} with mesh.dim = 3: the "
                "interface-energy anisotropy is 2D only (an angle in the plane); expected 0 in 3D (anisotropic "
                "kinetics in 3D: electrochemistry.exchange_current_ratio < 1)")
        if m.orientation.angles is not None:
            problems.append(
                f"mesh.orientation.angles = {m.orientation.angles} with mesh.dim = 3: plane angles are 2D only; "
                "expected mesh.orientation.axes (one c-axis vector [x, y, z] per grain) in 3D")
        for k, item in enumerate(ec.initial_na):
            if item.type in ("circle", "ellipse"):
                problems.append(
                    f"electrochemistry.initial_na[{k}].type = '{item.type}' with mesh.dim = 3: a 2D shape (it "
                    "would be a cylinder along z); expected 'layer' or 'flaws' (a Na-filled mesh.flaws entry: "
                    "pore, crack, notch) in 3D")
        if m.structured is not None or m.diagonal != "right":
            key, val = ("mesh.structured", m.structured) if m.structured is not None else ("mesh.diagonal", m.diagonal)
            problems.append(f"{key} = {val!r} with mesh.dim = 3: an option of the 2D structured rectangle; "
                            "expected mesh.h / mesh.h_fine (gmsh kinds 'voronoi', 'single_crystal') in 3D")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def to_dict(self) -> dict:
        """Every parameter as used (SI), JSON/YAML-ready."""
        return json.loads(self.model_dump_json())

    NON_PHYSICS: ClassVar[tuple[str, ...]] = ("name", "description", "output", "time", "solver")

    def physics_dict(self) -> dict:
        """Everything that defines the physics (SI): all sections except
        name, description, output, time and solver."""
        d = self.to_dict()
        for k in self.NON_PHYSICS:
            d.pop(k, None)
        return d

    def physics_hash(self) -> str:
        """Hash of ``physics_dict()``."""
        return hashlib.sha256(json.dumps(self.physics_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def physics_changes(self, old_physics: dict) -> list[str]:
        """What differs between this config's physics and ``old_physics`` (a
        ``physics_dict()`` written by a run, possibly by an older version), as
        'key: old -> new' lines; empty if the physics is the same.

        The old dict is read again with this version's defaults, so a field
        added since (whose default reproduces the old behaviour) is no change.
        """
        try:
            old = Config.model_validate({**old_physics, **{k: v for k, v in self.to_dict().items()
                                                           if k in self.NON_PHYSICS}})
        except ValidationError as exc:
            return [f"the checkpoint's physics is not readable by this version: {exc.errors()[0]['msg']}"]
        a, b = _flatten(old.physics_dict()), _flatten(self.physics_dict())
        return [f"{k}: {a.get(k, '(unset)')!r} -> {b.get(k, '(unset)')!r}"
                for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]

    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _flatten(d, prefix: str = "") -> dict:
    """{'a': {'b': 1}, 'c': [2]} -> {'a.b': 1, 'c.0': 2}."""
    out = {}
    items = d.items() if isinstance(d, dict) else enumerate(d)
    for k, v in items:
        key = f"{prefix}{k}"
        if isinstance(v, (dict, list)) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


# --------------------------------------------------------------------------
# loading, overrides and error reporting
# --------------------------------------------------------------------------
class ConfigError(Exception):
    """Bad input. ``problems`` is a list of one-line messages."""

    def __init__(self, problems: list[str]):
        self.problems = [_cut_line(str(p)) for p in problems]
        super().__init__("\n".join(self.problems))


class PathError(ConfigError):
    """A bad path or permission given on the command line or in the config."""


def _fields_at(loc: tuple) -> list[str]:
    """Field names of the model reached by following ``loc`` from Config."""
    model: Any = Config
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        f = getattr(model, "model_fields", {}).get(part)
        if f is None:
            return []
        model = _model_of(f.annotation)
    return list(getattr(model, "model_fields", {}).keys()) if model is not None else []


def _model_of(annotation):
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        m = _model_of(arg)
        if m is not None:
            return m
    return None


def _key(loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith(("tagged-union", "Schedule", "float", "function-")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _format_errors(exc: ValidationError) -> list[str]:
    """One line per problem: 'key.path = value: what was expected'."""
    by_key: dict[str, list[tuple[bool, str]]] = {}
    direct: list[str] = []
    for err in exc.errors():
        raw_loc = err["loc"]
        # drop union-branch labels pydantic inserts into the location
        clean = tuple(p for p in raw_loc if isinstance(p, int) or not str(p).startswith(
            ("function-", "Schedule", "float", "tagged-union", "union[", "[key]")))
        key = _key(clean)
        value = err.get("input")
        # for a value that fails every branch of a union, prefer the branch
        # that matches the kind of value given (a mapping -> the Schedule)
        preferred = isinstance(value, dict) == any("Schedule" in str(p) for p in raw_loc)
        if err["type"] == "extra_forbidden":
            parent, name = clean[:-1], str(clean[-1])
            options = _fields_at(parent)
            close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else (f"; expected one of: {', '.join(options)}" if options else "")
            msg = f"{key}: unknown key{hint}"
        else:
            text = err["msg"]
            if text.startswith("Value error, "):
                text = text[len("Value error, "):]
            if key == "(top level)" and err["type"] == "value_error":
                # Config-level checks (the 3D refusals) name their own keys, one problem per line
                direct.extend(text.split("\n"))
                continue
            if err["type"] == "missing":
                msg = f"{key}: missing; {text.lower()}"
            elif isinstance(value, dict):
                msg = f"{key}: {text}"
            else:
                msg = f"{key} = {short(value)}: {text}"
        by_key.setdefault(key, []).append((preferred, msg))
    problems = []
    # a value that fails every branch of a union reports the branches' inner keys too
    # (voltage: {x: 1} -> voltage.points missing, voltage.x unknown): keep the outer line
    outer = [k for k in by_key if k != "(top level)"]
    by_key = {k: v for k, v in by_key.items()
              if not any(k.startswith(o + ".") and not any(m[1].startswith(f"{o}: unknown key") for m in by_key[o])
                         for o in outer)}
    for key, msgs in by_key.items():
        if any(m[1].startswith(f"{key}: unknown key") for m in msgs):
            problems.extend(dict.fromkeys(m for _, m in msgs))
            continue
        best = [m for p, m in msgs if p] or [m for _, m in msgs]
        problems.append(best[0])
    return problems + direct


def _set_dotted(d: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    cur = d
    for i, p in enumerate(parts[:-1]):
        nxt = cur.get(p)
        if nxt is None:
            nxt = cur[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError([f"--set {dotted}: '{'.'.join(parts[: i + 1])}' is a value, not a section"])
        cur = nxt
    cur[parts[-1]] = value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``key.path=value`` overrides (value parsed as YAML)."""
    raw = copy.deepcopy(raw)
    problems = []
    for item in overrides or []:
        if "=" not in item:
            problems.append(f"--set {item!r}: expected key.path=value, e.g. --set mesh.h='0.5 um'")
            continue
        key, text = item.split("=", 1)
        key = key.strip()
        if not key or any(not p for p in key.split(".")):
            problems.append(f"--set {item!r}: expected a dotted key such as fracture.length_scale")
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        try:
            _set_dotted(raw, key, value)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return raw


MAX_CONFIG_BYTES = 1_000_000  # a config is a few kB; refuse anything that is clearly not one
MAX_YAML_NODES = 100_000  # scalars + collections after alias expansion (an alias bomb stops here)
MAX_LINE = 300  # a user value is shown cut to this many characters


def short(value, limit: int = 80) -> str:
    """repr(value) cut in the middle to at most ``limit`` characters."""
    text = repr(value) if not isinstance(value, str) or not value.startswith(("'", '"')) else value
    if len(text) <= limit:
        return text
    keep = (limit - 5) // 2
    return f"{text[:keep]} ... {text[-keep:]}"


def _cut_line(line: str, limit: int = 2 * MAX_LINE) -> str:
    """A problem line cut in the middle (keeps the key in front and the expectation at the end)."""
    if len(line) <= limit:
        return line
    keep = (limit - 30) // 2
    return f"{line[:keep]} ... ({len(line) - 2 * keep} characters cut) ... {line[-keep:]}"


def _yaml_loader():
    """A SafeLoader that refuses duplicate keys (naming both lines)."""

    class Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = loader.construct_object(key_node)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: PyYAML reports it below
                    continue
                if first is not None:
                    raise _DuplicateKey(key, first + 1, key_node.start_mark.line + 1)
                seen[key] = key_node.start_mark.line
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, lambda l, n: _mapping(l, n))

    def _mapping(loader, node):
        data: dict = {}
        yield data
        data.update(construct_mapping(loader, node))

    return Loader


class _DuplicateKey(Exception):
    def __init__(self, key, first: int, second: int):
        self.key, self.first, self.second = key, first, second


def _expanded_size(root) -> int:
    """Nodes of the composed YAML tree with every alias expanded (memoised, so
    the count itself is cheap); raises ValueError on a recursive alias or above
    MAX_YAML_NODES."""
    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(node) -> int:
        k = id(node)
        if k in memo:
            return memo[k]
        if k in active:
            raise ValueError("a recursive alias (an anchor used inside itself)")
        active.add(k)
        n = 1
        if isinstance(node, yaml.SequenceNode):
            n += sum(size(c) for c in node.value)
        elif isinstance(node, yaml.MappingNode):
            n += sum(size(a) + size(b) for a, b in node.value)
        active.discard(k)
        memo[k] = n
        if n > MAX_YAML_NODES:
            raise ValueError(f"more than {MAX_YAML_NODES:,} values once its aliases (*name) are expanded")
        return n

    return size(root)


def read_yaml(path: str | Path) -> dict:
    """Read a config file: a UTF-8 YAML mapping, no duplicate keys, bounded size."""
    path = Path(path)
    where = f"config file {str(path)!r}"
    if path.is_dir():
        raise PathError([f"{where}: is a directory (expected a YAML file)"])
    if not path.exists():
        raise PathError([f"{where}: not found (expected a YAML file)"])
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except PermissionError:
        raise PathError([f"{where}: not readable (permission denied; expected a readable YAML file)"]) from None
    except OSError as exc:
        raise PathError([f"{where}: cannot be read ({exc.strerror or exc}; expected a YAML file)"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{where}: larger than {MAX_CONFIG_BYTES:,} bytes (expected a YAML config of a few kB)"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError([f"{where}: not UTF-8 text: byte {exc.start} (line {line}) is 0x{raw[exc.start]:02x} "
                           "(expected a UTF-8 encoded YAML file)"]) from None
    text = text.removeprefix("\ufeff")
    loader = _yaml_loader()(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            try:
                _expanded_size(node)
            except ValueError as exc:
                raise ConfigError([f"{where}: refused: {exc} (expected a config without an alias bomb)"]) from None
            data = loader.construct_document(node)
        else:
            data = None
    except _DuplicateKey as exc:
        raise ConfigError([f"{where}: duplicate key {short(exc.key, 60)} at lines {exc.first} and {exc.second} "
                           "(expected each key once per section)"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{where}: not valid YAML{at} ({short(str(problem), 160)})"]) from None
    except RecursionError:
        raise ConfigError([f"{where}: nested too deeply (expected sections a few levels deep)"]) from None
    finally:
        loader.dispose()
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{where}: expected a mapping of sections at the top level, got {type(data).__name__}"])
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ConfigError([f"{where}: top-level key {short(bad[0], 60)} is not a name (expected section names "
                           "such as mesh, materials, loading)"])
    return data


def validate(raw: dict) -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, raw: dict | None = None) -> Config:
    """Read, override and validate a config. Raises ConfigError listing every problem."""
    data = read_yaml(path) if path is not None else (raw or {})
    if path is not None and "name" not in data:
        stem = __import__("re").sub(r"[^A-Za-z0-9._+=@,-]", "_", Path(path).stem)[:200].strip(".") or "run"
        data = {**data, "name": stem}
    data = apply_overrides(data, overrides or [])
    return validate(data)


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def schedule_value(v: float | Schedule | None, t: float) -> float:
    """Evaluate a constant or piecewise-linear schedule at time t [s]."""
    if v is None:
        return 0.0
    if isinstance(v, (int, float)):
        return float(v)
    pts = v.points
    if t <= pts[0][0]:
        return float(pts[0][1])
    for (t0, v0), (t1, v1) in zip(pts, pts[1:]):
        if t <= t1:
            return float(v0 + (v1 - v0) * (t - t0) / (t1 - t0))
    return float(pts[-1][1])
