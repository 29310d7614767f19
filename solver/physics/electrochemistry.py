"""Na-metal phase field with stress-coupled Butler-Volmer kinetics (docs/model.md#electrochemistry).

Unknowns (one P1 vector function with three components, solved together by
Newton, backward Euler):

    xi   Na metal phase (1 metal, 0 electrolyte)
    c~   Na+ concentration c / c0
    psi  electrolyte potential phi in units of the thermal voltage V_T = RT/F

Equations (strong form, SI; f = nF/RT):

    d xi/dt = -L_sigma [ W g0'(xi) - kappa lap xi ]
              - L_eta h'(xi) [ exp((1-alpha) f eta_eff) - c~ exp(-alpha f eta_eff) ] chi(d, xi)
    d c~/dt = div[ D_eff (grad c~ + c~ f grad phi) ] - (c_s / c0) d xi/dt
    div( sigma_eff grad phi ) = n F c_s d xi/dt

sigma_eff = h sigma_Na + (1 - h) sigma_SE, D_eff likewise (docs/model.md). phi is the
potential of the electrolyte; a large sigma_Na / sigma_SE (the default 1e3) makes
the diffuse interface a conducting sheet along the front, which removes the tip
focusing of a sharp interface (tests: Laplacian growth).

with g0(xi) = xi^2 (1 - xi)^2, h(xi) = xi^3 (6 xi^2 - 15 xi + 10) (h and h' of xi
clipped to [0, 1]: no Butler-Volmer term outside the two phases), c_s = 1/Omega,
W = 12 gamma/delta, kappa = 3 gamma delta/2, L_eta = i0 / (1.5 n F c_s delta),
chi = 1, or e + (1 - e) d ('damage'), or max(e + (1 - e) d, xi) ('metal'),
e = ``intact_deposition`` (``deposition_restriction``), times
r + (1 - r) n.(I - m m).n with n = grad xi / |grad xi| when the exchange
current is anisotropic (r = ``exchange_current_ratio`` < 1, m the plane normal).
With ``anti_curvature`` the xi equation gains - L_sigma kappa |grad xi|_0 div n,
|grad xi|_0 = (4/delta) xi (1 - xi), n = grad xi_n / |grad xi_n| (previous
step): kappa lap xi then keeps only its normal part, which holds the tanh
profile, and the curvature flow L_sigma kappa / R of a tip of radius R is
removed. With ``anisotropy_strength`` delta_a > 0 (2D) kappa lap xi is the
variation of the gradient energy kappa0/2 [1 + delta_a cos(omega (theta_n -
theta_g))] |grad xi|^2 (``gradient_energy``): a planar front then has the width
delta sqrt(kappa(theta_n)/kappa0), and moves at 1.5 delta L_eta |B| times that
factor.

Sign conventions (documented choice)
-----------------------------------
* phi is the potential of the electrolyte (Na+ conductor). All Na metal is
  electronically connected to the plating electrode (y = 0, facet tag 1), whose
  electronic potential is the ground, Phi_metal = 0. The activation overpotential
  at a point of the interface is the metal-minus-solution potential

      eta_a = Phi_metal - phi - E0 = -phi - E0          (< 0 when plating)

  (docs/model.md writes eta_a = phi - phi_ref - E0 with phi read as the electrode
  potential relative to the local electrolyte; the two agree.) With stress
  coupling eta_eff = eta_a + Omega p / (nF), p in Pa, compression positive.
* The counter electrode (y = H, tag 2) is an ideal, non-polarisable Na
  reservoir: phi = V (the cell voltage, counter minus plating electrode) and
  c~ = ``electrochemistry.concentration_ratio`` there.
* The plating electrode (``electrochemistry.plating_electrode``) is either
  ``blocking`` (default): zero flux of phi and c~, Na+ only leaves the
  electrolyte by deposition into xi, so the cell current equals the
  deposition rate (Faraday); or ``reactive``: the bare electrolyte/anode
  interface takes the Butler-Volmer current (outward normal -y)

      -sigma grad phi . n = i_b = -i0 B(eta_a, c~) (1 - h(xi)),  eta_a = -phi - E0,

  without stress term (the anode is free); the Na+ flux out is
  N . n = i_b / (nF), and the plated Na joins the anode outside the domain
  (it is not in xi). Cell current = deposition rate + int i_b ds.
  Inside the metal phi is the electrolyte potential continued with the
  (capped) conductivity sigma_Na: nearly flat.
* Current density i > 0 means plating at y = 0 (V > 0); i < 0 stripping.

Internal units (docs/model.md#scales-and-units): length um, time s, potential V_T = RT/F,
concentration c / c0, pressure MPa. The charge equation is divided by
n F c_s, so every residual row is in um^2/s:

    int D_sigma grad psi . grad w + (xi - xi_n)/dt w = 0,   D_sigma = sigma V_T / (n F c_s)

Electrode control: potentiostatic V(t) (constant or schedule) or galvanostatic
i(t): the cell voltage is an extra scalar unknown with the global constraint
n F c_s int d xi/dt dx (+ int i_b ds, reactive) = i * L_electrode. It is solved by a *bordered Newton*
(block elimination): per iteration one Jacobian, two solves with the same
preconditioner (the Newton update a and the response b to a unit change of V),
dV = -(G + g.a) / (g.b). Compared with an outer secant loop on V this costs
~2 linear solves per Newton iteration instead of several full Newton solves,
and keeps the counter electrode an equipotential (a Neumann flux would not).
Because of the border, the Newton loop is written here with PETSc KSP instead
of SNES: full Newton step, then backtracking (halving, up to 1/32) on the
residual norm; converged when the update is below rtol x max(1, |U|_inf) (U
is dimensionless, O(1)) or the residual fell by rtol (cfg.solver.newton).

Linear solver (prefix ``electrochemistry_``, overrides from
``solver.petsc.electrochemistry``): GMRES + multiplicative fieldsplit over the
three interleaved fields with BoomerAMG on each block; see
benchmarks/electrochemistry_scaling.py (monolithic hypre/GAMG and ILU were
tried; their iteration counts grow much faster under refinement).

Known model properties (docs/model.md defaults), measured in the tests:
* The capillary (Allen-Cahn) mobility L_sigma kappa = 0.75 um^2/s is ~100 x
  the kinetic 1.5 delta L_eta = 6.4e-3 um/s per unit B: a nucleus of radius R
  shrinks at ~0.75/R um/s unless driven hard.
* A front closer than ~2 delta to the (no-flux) electrode feels the wall
  through the large L_sigma: its stall pressure is lowered (12% at 1.2 delta).
* sigma_Na/sigma_SE = 1e3 (x 100 across the planes) makes the diffuse metal
  tail conduct ahead of the front where h(xi) sigma_Na > sigma_SE (xi > ~0.01,
  about delta ln(sigma_Na/sigma_SE)/4 ahead): the electrolyte is effectively
  that much shorter.
* Backward Euler of the double well is only unconditionally unique for
  dt L_sigma W < 1 (dt < 0.17 s with defaults); larger steps work while the
  front moves < ~0.1 delta per step (the driver's max_dxi), else Newton fails
  and the driver cuts dt.
"""

from __future__ import annotations

import time as _time

import numpy as np
import ufl
from dolfinx import fem
from mpi4py import MPI
from petsc4py import PETSc

from .. import scales
from ..config import schedule_value
from ..mesh.domain import COUNTER_ELECTRODE, PLATING_ELECTRODE, Domain
from ..numerics.block_newton import BlockNewton, Border
from ..numerics.linalg import SolveError
from ..numerics.petsc_defaults import ELECTROCHEMISTRY_PETSC
from .initial_na import initial_xi
from .parameters import bv_bracket
from .phases import h_interp, h_prime

XI, CONC, POT = 0, 1, 2
# Quadrature degree of the residual (h'(xi) B(eta) is a degree-4 polynomial in a P1 xi
# times the exponentials); the coupling pressure is evaluated at these points.
QUADRATURE_DEGREE = 4


def pressure_space(msh):
    """The space of the coupling pressure the kinetics see: values at the
    quadrature points of the electrochemistry residual (both coupling schemes
    evaluate the stress there, so they solve the same discrete equations)."""
    import basix.ufl

    qe = basix.ufl.quadrature_element(msh.topology.cell_name(), value_shape=(), degree=QUADRATURE_DEGREE)
    return fem.functionspace(msh, qe)
_OPTIONS_SET: set[str] = set()
_DEBUG = bool(__import__("os").environ.get("NACRACK_EC_DEBUG"))

# Default linear solver of the (xi, c~, phi) Jacobian (benchmarks/electrochemistry_scaling.py)
KSP_DEFAULTS = ELECTROCHEMISTRY_PETSC


# --------------------------------------------------------------------------
# scalar helpers (SI), used by tests and to guess the galvanostatic voltage
# --------------------------------------------------------------------------
def bv_overpotential(i: float, i0: float, alpha: float, f: float, c: float = 1.0) -> float:
    """eta [V] with -i0 B(eta) = i (i > 0 plating -> eta < 0), by bisection."""
    lo, hi = -50.0 / f, 50.0 / f
    g = lambda e: -i0 * bv_bracket(e, alpha, f, c) - i  # noqa: E731  decreasing in e
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if g(mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def g0_prime(xi):
    """g0'(xi) for g0 = xi^2 (1 - xi)^2: 2 xi (1 - xi)(1 - 2 xi)."""
    return 2.0 * xi * (1.0 - xi) * (1.0 - 2.0 * xi)


def chebyshev(k: int, x):
    """T_k(x), so that cos(k phi) = T_k(cos phi)."""
    t0, t1 = 1.0, x
    if k == 0:
        return t0
    for _ in range(k - 1):
        t0, t1 = t1, 2.0 * x * t1 - t0
    return t1


def gradient_energy(xi, theta, delta_a: float, omega: int, eps2: float):
    """Anisotropic gradient energy density over kappa0 (docs/model.md#electrochemistry):

        1/2 [1 + delta_a cos(omega (theta_n - theta_g))] |grad xi|^2,

    cos(theta_n - theta_g) = n . a, n = grad xi / sqrt(|grad xi|^2 + eps2), a =
    (cos theta_g, sin theta_g) along the grain's planes; its variation is the
    xi equation's kappa term (kappa lap xi for delta_a = 0)."""
    g = ufl.grad(xi)
    n = g / ufl.sqrt(ufl.inner(g, g) + eps2)
    cos_n = n[0] * ufl.cos(theta) + n[1] * ufl.sin(theta)
    return 0.5 * (1.0 + delta_a * chebyshev(omega, cos_n)) * ufl.inner(g, g)


def derived_parameters(cfg) -> dict:
    """Physical (SI) and internal (um, s, V_T) coefficients of the model."""
    from .parameters import interface_parameters

    ec, mat = cfg.electrochemistry, cfg.materials
    el, na = mat.electrolyte, mat.sodium
    ip = interface_parameters(cfg)
    n = ec.charge_number
    V_T = scales.GAS_CONSTANT * mat.temperature / scales.FARADAY  # RT/F [V]
    c_s = ip["metal_site_density_c_s_mol_m3"]
    L2 = scales.LENGTH**2
    W, kappa, L_eta = ip["barrier_height_W_J_m3"], ip["gradient_coefficient_kappa_J_m"], ip["kinetic_coefficient_L_eta_1_s"]
    L_sigma = ec.interface_mobility
    d_sigma = lambda s: s * V_T / (n * scales.FARADAY * c_s) / L2  # noqa: E731  [um^2/s]
    return {
        # SI
        "W_J_m3": W,
        "kappa_J_m": kappa,
        "L_eta_1_s": L_eta,
        "L_sigma_m3_J_s": L_sigma,
        "c_s_mol_m3": c_s,
        "thermal_voltage_V": V_T,
        "f_1_V": n / V_T,
        "planar_velocity_per_B_m_s": 1.5 * ec.interface_width * L_eta,
        "stall_pressure_per_volt_Pa_V": n * scales.FARADAY / na.molar_volume,
        # internal
        "LsW": L_sigma * W * scales.TIME,  # 1/s
        "Lskappa": L_sigma * kappa / L2,  # um^2/s
        "L_eta": L_eta * scales.TIME,
        "delta": scales.length(ec.interface_width),
        "D_par": el.diffusivity_parallel / L2,
        "D_perp": el.diffusivity_perpendicular / L2,
        "D_Na": (na.diffusivity_ratio or na.conductivity_ratio) * el.diffusivity_parallel / L2,
        "Ds_par": d_sigma(el.conductivity_parallel),
        "Ds_perp": d_sigma(el.conductivity_perpendicular),
        "Ds_Na": d_sigma(na.conductivity_ratio * el.conductivity_parallel),
        "cs_over_c0": c_s / el.na_concentration,
        "stress_per_MPa": na.molar_volume * scales.STRESS / (scales.GAS_CONSTANT * mat.temperature),
        "E0": ec.equilibrium_potential / V_T,
        "n": n,
        "alpha": ec.transfer_coefficient,
    }


# --------------------------------------------------------------------------
class ElectrochemistryProblem:
    """(xi, c~, phi) at one time step by Newton; see the module docstring.

    Parameters
    ----------
    domain : Domain (mesh in um)
    cfg : Config
    pressure : scalar fem.Function (P1 or DG0) in MPa, compression positive,
        owned and updated by the caller (mechanics); None -> 0.
    d : scalar fem.Function, damage in [0, 1] (caller-owned); None -> 0.

    Step protocol (``coupling.protocol.FieldProblem``): ``solve(t, dt)``
    integrates from the *committed* state at time t - dt to t and leaves the
    result pending. Calling ``solve`` again with the same t re-solves the step
    (stagger iterations; the pending result is the initial guess). The
    pending result is committed by ``commit()`` or automatically when the
    next step starts where the pending one ended. ``save_state`` /
    ``restore_state`` snapshot everything (committed and pending).
    """

    def __init__(self, domain: Domain, cfg, pressure: fem.Function | None = None, d: fem.Function | None = None,
                 pressure_report: fem.Function | None = None):
        ec = cfg.electrochemistry
        if ec.anisotropy_strength > 0.0 and domain.mesh.topology.dim != 2:
            raise ValueError("electrochemistry.anisotropy_strength > 0 is implemented in 2D only; expected 0 in 3D")
        self.domain, self.cfg = domain, cfg
        msh = domain.mesh
        self.comm = msh.comm
        self.tdim = msh.topology.dim
        self.p = derived_parameters(cfg)
        P = self.p
        self.electrical = cfg.loading.electrical
        if self.electrical.control == "none":
            raise ValueError("electrochemistry phase field needs loading.electrical.control "
                             "'potentiostatic' or 'galvanostatic'")
        self.galvanostatic = self.electrical.control == "galvanostatic"
        self.c_b = ec.concentration_ratio

        self.W = fem.functionspace(msh, ("Lagrange", 1, (3,)))
        self.V1, self._map = [], []
        for i in range(3):
            Vi, mi = self.W.sub(i).collapse()
            self.V1.append(Vi)
            self._map.append(np.asarray(mi))
        self.u = fem.Function(self.W, name="electrochemistry")
        self.u_n = fem.Function(self.W, name="electrochemistry_old")
        self.dt = fem.Constant(msh, PETSc.ScalarType(1.0))
        self.voltage = fem.Constant(msh, PETSc.ScalarType(0.0))  # scaled by V_T
        zero = fem.Constant(msh, PETSc.ScalarType(0.0))
        self.pressure = pressure if pressure is not None else zero
        # the pressure field reported by max_pressure (DG0/P1; the form's may live on quadrature points)
        self.pressure_report = pressure_report if pressure_report is not None else self.pressure
        self.damage = d if d is not None else zero

        # ---------------- weak form ----------------
        xi, c, psi = self.u[XI], self.u[CONC], self.u[POT]
        xi_n, c_n = self.u_n[XI], self.u_n[CONC]
        v = ufl.TestFunction(self.W)
        vx, vc, vp = v[XI], v[CONC], v[POT]
        dx = ufl.Measure("dx", domain=msh, metadata={"quadrature_degree": QUADRATURE_DEGREE})
        self.dx = dx
        xic = ufl.max_value(ufl.min_value(xi, 1.0), 0.0)
        h = h_interp(xic)
        dmg = ufl.max_value(ufl.min_value(self.damage, 1.0), 0.0)
        k_d = 1.0 + (ec.crack_enhancement - 1.0) * dmg**2
        eye = ufl.Identity(self.tdim)
        D_se = k_d * domain.anisotropic(P["D_par"], P["D_perp"])
        S_se = k_d * domain.anisotropic(P["Ds_par"], P["Ds_perp"])
        self.D_eff = h * P["D_Na"] * eye + (1.0 - h) * D_se
        self.S_eff = h * P["Ds_Na"] * eye + (1.0 - h) * S_se
        n, alpha = P["n"], P["alpha"]
        f_eta = -n * (psi + P["E0"])  # f eta_a (dimensionless)
        if ec.stress_coupling:
            f_eta = f_eta + P["stress_per_MPa"] * self.pressure
        self.f_eta_eff = f_eta
        B = ufl.exp((1.0 - alpha) * f_eta) - c * ufl.exp(-alpha * f_eta)
        e = ec.intact_deposition
        if ec.deposition_restriction == "damage":
            chi = e + (1.0 - e) * dmg
        elif ec.deposition_restriction == "metal":
            chi = ufl.max_value(e + (1.0 - e) * dmg, xic)
        else:
            chi = 1.0
        eps2 = (1e-3 / P["delta"]) ** 2  # regularises |grad xi|^2 (~ 1/delta^2 inside the interface)
        r_i0 = ec.exchange_current_ratio
        if r_i0 < 1.0:  # i0(n) = i0 [r + (1 - r) n.P_par.n], n = grad xi / |grad xi|
            g = ufl.grad(xi)
            p_par, _ = domain.plane_tensors()
            chi = chi * (r_i0 + (1.0 - r_i0) * ufl.inner(ufl.dot(p_par, g), g) / (ufl.inner(g, g) + eps2))
        rate = (xi - xi_n) / self.dt
        if ec.anisotropy_strength > 0.0:
            gradient_term = ufl.derivative(gradient_energy(xi, domain.theta, ec.anisotropy_strength,
                                                           ec.anisotropy_mode, eps2) * dx, self.u, v)
        else:
            gradient_term = ufl.inner(ufl.grad(xi), ufl.grad(vx)) * dx
        F_xi = (rate * vx + P["LsW"] * g0_prime(xi) * vx + P["L_eta"] * h_prime(xic) * B * chi * vx) * dx \
            + P["Lskappa"] * gradient_term
        F_c = ((c - c_n) / self.dt * vc + ufl.inner(self.D_eff * (ufl.grad(c) + n * c * ufl.grad(psi)), ufl.grad(vc))
               + P["cs_over_c0"] * rate * vc) * dx
        F_p = (ufl.inner(self.S_eff * ufl.grad(psi), ufl.grad(vp)) + rate * vp) * dx
        _, ds, _ = domain.measures()
        self.reactive = ec.plating_electrode == "reactive"
        total_rate = rate * dx  # um^2/s: all Na+ leaving the electrolyte (x n F c_s = cell current)
        if self.reactive:
            # plating rate onto the bare anode [um/s]: j_b = -v0 B(eta_a, c~) (1 - h), v0 = i0 / (n F c_s);
            # -S grad psi . n = j_b and -D (grad c~ + n c~ grad psi) . n = (c_s/c0) j_b at y = 0
            i0_anode = ec.anode_exchange_current_density
            i0_anode = ec.exchange_current_density if i0_anode is None else i0_anode
            v0 = i0_anode / (n * scales.FARADAY * P["c_s_mol_m3"]) / scales.LENGTH * scales.TIME
            f_eta_b = -n * (psi + P["E0"])
            B_b = ufl.exp((1.0 - alpha) * f_eta_b) - c * ufl.exp(-alpha * f_eta_b)
            self.j_b = -v0 * B_b * (1.0 - h)
            dsp = ds(PLATING_ELECTRODE)
            F_c = F_c + P["cs_over_c0"] * self.j_b * vc * dsp
            F_p = F_p + self.j_b * vp * dsp
            total_rate = total_rate + self.j_b * dsp
            self._anode_rate_form = fem.form(self.j_b * dsp)
        if ec.anti_curvature:
            # kappa lap xi = kappa (xi_nn + |grad xi| div n): subtract the curvature part with the
            # equilibrium slope |grad xi|_0 = (4/delta) xic (1 - xic); weak form of + Lskappa |grad xi|_0 div n vx
            # is - Lskappa n . grad(|grad xi|_0 vx) (no second derivatives of the P1 xi). n is taken from
            # the committed xi_n (semi-implicit): as accurate on the disc check, and Newton takes as many
            # iterations as without the term (3.0 per step there; 5.5 with n(xi) implicit, which also
            # failed at L_sigma W dt = 3)
            g = ufl.grad(xi_n)
            n_xi = g / ufl.sqrt(ufl.inner(g, g) + eps2)
            slope0 = 4.0 / P["delta"] * xic * (1.0 - xic)
            F_xi = F_xi - P["Lskappa"] * ufl.inner(n_xi, ufl.grad(slope0 * vx)) * dx
        F = F_xi + F_c + F_p
        self.F = F  # UFL residual (the monolithic scheme rebuilds it with the live pressure)
        self.F_form = fem.form(F)
        self.J_form = fem.form(ufl.derivative(F, self.u, ufl.TrialFunction(self.W)))
        # global quantities (internal units)
        self._rate_form = fem.form(total_rate)  # um^2/s (cell current / (n F c_s))
        self._area_form = fem.form(xi * dx)  # um^2
        if self.reactive:  # d/dU of int rate dx + int j_b ds: depends on U, re-assembled per Newton iteration
            self._g_form = fem.form(ufl.derivative(total_rate, self.u, v))
        else:
            self._g_form = fem.form(vx / self.dt * dx)  # d/dU of int rate
        nrm = ufl.FacetNormal(msh)
        self._flux_form = fem.form(ufl.dot(self.S_eff * ufl.grad(psi), nrm) * ds(COUNTER_ELECTRODE))
        self.electrode_length = self.comm.allreduce(
            fem.assemble_scalar(fem.form(fem.Constant(msh, PETSc.ScalarType(1.0)) * ds(PLATING_ELECTRODE))), op=MPI.SUM)
        if self.electrode_length <= 0.0:
            self.electrode_length = domain.width

        # ---------------- boundary conditions ----------------
        fdim = self.tdim - 1
        top = domain.facet_tags.find(COUNTER_ELECTRODE)
        self._dofs_c = fem.locate_dofs_topological(self.W.sub(CONC), fdim, top)
        self._dofs_p = fem.locate_dofs_topological(self.W.sub(POT), fdim, top)
        self.bcs = [fem.dirichletbc(self.voltage, self._dofs_p, self.W.sub(POT)),
                    fem.dirichletbc(PETSc.ScalarType(self.c_b), self._dofs_c, self.W.sub(CONC))]
        self._unit = fem.Constant(msh, PETSc.ScalarType(1.0))
        self.bcs_unit = [fem.dirichletbc(self._unit, self._dofs_p, self.W.sub(POT)),
                         fem.dirichletbc(PETSc.ScalarType(0.0), self._dofs_c, self.W.sub(CONC))]

        # ---------------- nonlinear solver (built at the first solve) ----------------
        self.prefix = "electrochemistry_"
        self.rtol = cfg.solver.newton.rtol
        self.max_it = cfg.solver.newton.max_iterations
        self.newton = None
        self._I_target = 0.0

        # ---------------- state ----------------
        self.xi = fem.Function(self.V1[XI], name="metal")
        self._phi_out = fem.Function(self.V1[POT], name="potential")
        self._c_out = fem.Function(self.V1[CONC], name="concentration")
        xi0 = initial_xi(cfg, self.V1[XI].tabulate_dof_coordinates())
        arr = self.u.x.array
        arr[self._map[XI]] = xi0
        arr[self._map[CONC]] = self.c_b
        V0 = self._target_voltage(0.0) if not self.galvanostatic else self._guess_voltage(0.0)
        self.voltage.value = V0
        arr[self._map[POT]] = V0
        self.u.x.scatter_forward()
        self.u_n.x.array[:] = self.u.x.array
        self._update_xi()
        self.area0 = self._area()
        self.t_committed = 0.0
        self.charge = 0.0  # committed cumulative charge per depth [C/m]
        self._pending = False
        self._pending_dt = 0.0
        # the last committed step's metal rate (xi_n - xi_(n-1)) / dt_n [1/s] and its dt_n [s]:
        # the rate predictor of the next step's initial guess (predict_xi)
        self.xi_rate = fem.Function(self.V1[XI], name="metal_rate")
        self.rate_dt = 0.0
        self._pending_current = 0.0  # A/m
        self._V_committed = float(self.voltage.value)
        self.last_current = 0.0  # A/m (last solve)
        self.newton_iterations = 0
        self.krylov_iterations = 0
        self.wall = 0.0
        self._saved = None

    # ------------------------------------------------------------------
    # electrode control
    def _target_voltage(self, t: float) -> float:
        """Potentiostatic cell voltage at t, scaled by V_T."""
        return schedule_value(self.electrical.voltage, t) / self.p["thermal_voltage_V"]

    def target_current_density(self, t: float) -> float:
        """Galvanostatic current density at t [A/m^2] (positive = plating)."""
        return schedule_value(self.electrical.current_density, t)

    def _guess_voltage(self, t: float) -> float:
        """Kinetic (BV) overpotential plus the ohmic drop of a uniform current.
        With a reactive plating electrode the current is taken through the
        bare anode at its own i0 (anode_exchange_current_density): a poorly
        wetted anode needs the larger overpotential, which the metal in the
        flaws then shares (an upper bound the Newton comes down from, rather
        than a guess tens of thermal voltages too low)."""
        ec = self.cfg.electrochemistry
        i = self.target_current_density(t)
        f = self.p["f_1_V"]
        i0 = ec.exchange_current_density
        if self.reactive and ec.anode_exchange_current_density is not None:
            i0 = min(i0, ec.anode_exchange_current_density)
        eta = bv_overpotential(i, i0, ec.transfer_coefficient, f, self.c_b)
        sig = self.cfg.materials.electrolyte.conductivity_parallel
        return (-eta + i * scales.LENGTH * self.domain.height / sig) / self.p["thermal_voltage_V"]

    # ------------------------------------------------------------------
    def _update_xi(self):
        self.xi.x.array[:] = self.u.x.array[self._map[XI]]

    def _area(self) -> float:
        return self.comm.allreduce(fem.assemble_scalar(self._area_form), op=MPI.SUM)

    def _build_newton(self) -> BlockNewton:
        """The staggered scheme's Newton over (xi, c~, psi), bordered by the cell
        voltage when galvanostatic. As the reference scheme it keeps the
        Krylov tolerance of its options (ksp_rtol 1e-9), rebuilds the
        preconditioner at every iteration and solves the voltage sensitivity
        at every iteration (solver.coupling: monolithic uses the inexact,
        lagged variants of the same Newton)."""
        cfg = self.cfg
        overrides = cfg.solver.petsc.get("electrochemistry") if cfg.solver.petsc else None
        border = None
        if self.galvanostatic:
            border = Border(block=0, voltage=self.voltage, bcs_unit=self.bcs_unit, g_form=self._g_form,
                            g_depends_on_u=self.reactive, residual=lambda: self.rate() - self._I_target,
                            scale=lambda: abs(self._I_target))
        return BlockNewton([self.F], [self.u], [self.bcs], self.prefix, self.comm, KSP_DEFAULTS, overrides=overrides,
                           border=border, rtol=self.rtol, max_iterations=self.max_it, forcing="options",
                           reuse_preconditioner=False, name="electrochemistry")

    def _newton(self, t_new: float):
        """Newton (bordered when galvanostatic). Returns (newton its, krylov its)."""
        if self.newton is None:
            self.newton = self._build_newton()
        self.newton.max_it, self.newton.rtol = self.max_it, self.rtol  # may be changed after construction
        if self.galvanostatic:
            self._I_target = self.galvanostatic_target(t_new)
        self.newton.sensitivity_valid = False  # solved again at every iteration (lag_sensitivity False)
        st = self.newton.solve(scales=[None], rtols=[self.rtol], update_test=[True], lag_sensitivity=False)
        return st.iterations, st.krylov_iterations

    @property
    def fallback_solves(self) -> int:
        return self.newton.fallback_solves if self.newton is not None else 0

    # ------------------------------------------------------------------
    def commit(self):
        """Accept the pending step as the state at t + dt."""
        if not self._pending:
            return
        m = self._map[XI]
        self.xi_rate.x.array[:] = (self.u.x.array[m] - self.u_n.x.array[m]) / self._pending_dt
        self.rate_dt = self._pending_dt
        self.u_n.x.array[:] = self.u.x.array
        self.t_committed += self._pending_dt
        self.charge += self._pending_current * self._pending_dt
        self._V_committed = float(self.voltage.value)
        self._pending = False

    def begin_step(self, t_start: float, dt: float) -> None:
        """Prepare the step t_start -> t_start + dt [s] from the committed state:
        commit a pending step that ended at t_start, set the initial guess (the
        committed state, or the pending result when the same step is solved
        again), dt and, when potentiostatic, the cell voltage at the end."""
        t = t_start
        tol = 1e-12 * max(1.0, abs(t))
        if self._pending and abs(t - (self.t_committed + self._pending_dt)) <= tol + 1e-9 * self._pending_dt:
            self.commit()
        if abs(t - self.t_committed) > tol + 1e-9 * dt:
            if self._pending:
                raise RuntimeError(f"electrochemistry.solve(t={t}): the committed state is at "
                                   f"t={self.t_committed} with a pending step of {self._pending_dt} s")
            self.t_committed = t  # start (or restart) the clock here
        if not self._pending:
            self.u.x.array[:] = self.u_n.x.array  # initial guess: committed state
            self.voltage.value = self._V_committed
        self.dt.value = dt
        if not self.galvanostatic:
            self.voltage.value = self._target_voltage(t + dt)

    def predict_xi(self, dt: float) -> bool:
        """Initial guess of the step from the committed state by the last
        step's rate: xi = clip(xi_n + min(dt, dt_n) (dxi/dt)_n, 0, 1), c~ and
        psi unchanged. False (nothing done) when there is no committed rate or
        the step is solved again (a pending result is the better guess)."""
        if self._pending or self.rate_dt <= 0.0:
            return False
        m = self._map[XI]
        a = self.u.x.array
        a[m] = np.clip(self.u_n.x.array[m] + min(dt, self.rate_dt) * self.xi_rate.x.array, 0.0, 1.0)
        self.u.x.scatter_forward()
        return True

    def abandon_step(self) -> None:
        """After a failed solve: back to the committed state."""
        self.u.x.array[:] = self.u_n.x.array
        self.voltage.value = self._V_committed
        self._pending = False
        self._update_xi()

    def finish_step(self, dt: float, its: int = 0, kits: int = 0) -> None:
        """The solved state becomes the pending result of the step (cell current, xi copy)."""
        self._update_xi()
        self.last_current = self._to_current(self.rate())
        self._pending = True
        self._pending_dt = dt
        self._pending_current = self.last_current
        self.newton_iterations, self.krylov_iterations = its, kits

    def galvanostatic_target(self, t: float) -> float:
        """int rate dx (+ int j_b ds) that the galvanostatic control asks for at t [s]
        [um^2/s]: n F c_s int dxi/dt dx = i L."""
        i = self.target_current_density(t)
        # electrode measure in m^(tdim-1), rate in um^tdim/s (3D: A and um^3/s)
        return i * self.electrode_length * scales.LENGTH ** (self.tdim - 1) / (
            self.p["n"] * scales.FARADAY * self.p["c_s_mol_m3"]) / scales.LENGTH**self.tdim

    def rate(self) -> float:
        """int rate dx (+ int j_b ds) of the current state [um^2/s], global."""
        return self.comm.allreduce(fem.assemble_scalar(self._rate_form), op=MPI.SUM)

    def solve(self, t: float, dt: float) -> dict:
        """Advance from the committed state at t - dt [s] to t [s].

        Returns {"newton_iterations", "krylov_iterations"}; raises SolveError
        (the state is then reset to the committed state; the caller cuts dt)."""
        self.begin_step(t - dt, dt)
        t0 = _time.perf_counter()
        try:
            its, kits = self._newton(t)
        except SolveError:
            self.abandon_step()
            raise
        finally:
            self.wall += _time.perf_counter() - t0
        self.finish_step(dt, its, kits)
        return {"newton_iterations": its, "krylov_iterations": kits}

    def _to_current(self, rate_um2_s: float) -> float:
        """n F c_s * (um^tdim/s) -> A/m (current per depth; 3D: A)."""
        return self.p["n"] * scales.FARADAY * self.p["c_s_mol_m3"] * rate_um2_s * scales.LENGTH**self.tdim

    # ------------------------------------------------------------------
    def save_state(self):
        self._saved = dict(u=self.u.x.array.copy(), u_n=self.u_n.x.array.copy(), V=float(self.voltage.value),
                           Vc=self._V_committed, t=self.t_committed, q=self.charge, pending=self._pending,
                           pdt=self._pending_dt, pI=self._pending_current, last=self.last_current,
                           rate=self.xi_rate.x.array.copy(), rate_dt=self.rate_dt)

    def restore_state(self):
        s = self._saved
        if s is None:
            raise RuntimeError("restore_state() without save_state()")
        self.u.x.array[:] = s["u"]
        self.u_n.x.array[:] = s["u_n"]
        self.voltage.value = s["V"]
        self._V_committed, self.t_committed, self.charge = s["Vc"], s["t"], s["q"]
        self._pending, self._pending_dt, self._pending_current = s["pending"], s["pdt"], s["pI"]
        self.last_current = s["last"]
        self.xi_rate.x.array[:] = s["rate"]
        self.rate_dt = s["rate_dt"]
        self._update_xi()

    # -- checkpoint (the driver writes the Functions with adios4dolfinx) ----
    # the metal rate of the last step: absent from checkpoints of older versions (read as 0: no predictor)
    optional_checkpoint_keys = ("xi_rate",)

    def checkpoint_functions(self) -> dict:
        """The committed state (xi, c~, psi) as one Function, and the last
        step's metal rate (the next step's predictor)."""
        return {"u": self.u_n, "xi_rate": self.xi_rate}

    def checkpoint_state(self) -> dict:
        """The committed scalars: voltage (RT/F units), time [s], charge [C/m],
        the dt [s] of the last step (of xi_rate)."""
        return {"voltage": self._V_committed, "time_s": self.t_committed, "charge_C_m": self.charge,
                "rate_dt_s": self.rate_dt}

    def load_checkpoint_state(self, state: dict) -> None:
        """After u_n was read from a checkpoint: restore the committed scalars."""
        self.u_n.x.scatter_forward()
        self.u.x.array[:] = self.u_n.x.array
        self._V_committed = state.get("voltage", self._V_committed)
        self.voltage.value = self._V_committed
        self.t_committed = state.get("time_s", self.t_committed)
        self.charge = state.get("charge_C_m", self.charge)
        self.xi_rate.x.scatter_forward()
        self.rate_dt = state.get("rate_dt_s", 0.0)
        self._pending = False
        self._update_xi()

    # ------------------------------------------------------------------
    def xi_function(self) -> fem.Function:
        """P1 scalar Function 'metal' = xi, kept up to date in place by solve()
        and restore_state(); the caller needs no update call."""
        return self.xi

    def output_functions(self) -> list[fem.Function]:
        """[potential phi (V), concentration c (mol/m^3), metal xi (-)] for XDMF."""
        a = self.u.x.array
        self._phi_out.x.array[:] = a[self._map[POT]] * self.p["thermal_voltage_V"]
        self._c_out.x.array[:] = a[self._map[CONC]] * self.cfg.materials.electrolyte.na_concentration
        self._update_xi()
        return [self._phi_out, self._c_out, self.xi]

    def cell_voltage(self) -> float:
        """Counter minus plating electrode potential [V]."""
        return float(self.voltage.value) * self.p["thermal_voltage_V"]

    def current_per_depth(self) -> float:
        """Cell current of the last solve per depth [A/m] = n F c_s int dxi/dt dx (+ int i_b ds, reactive)
        (the variationally consistent counter-electrode current)."""
        return self.last_current

    def anode_current_per_depth(self) -> float:
        """Current plated directly onto the bare anode (reactive plating
        electrode) in the last state, int i_b ds [A/m]; 0 when blocking."""
        if not self.reactive:
            return 0.0
        return self._to_current(self.comm.allreduce(fem.assemble_scalar(self._anode_rate_form), op=MPI.SUM))

    def boundary_current_per_depth(self) -> float:
        """Counter-electrode current from the potential gradient,
        int_{y=H} sigma grad phi . n ds [A/m] (an independent, O(h) check)."""
        flux = self.comm.allreduce(fem.assemble_scalar(self._flux_form), op=MPI.SUM)
        return self._to_current(flux)

    def charge_per_depth(self) -> float:
        """Cumulative charge passed including the pending step [C/m]."""
        return self.charge + (self._pending_current * self._pending_dt if self._pending else 0.0)

    def metal_area(self) -> float:
        """int xi dx [m^2] (per metre of depth in 2D)."""
        return self._area() * scales.LENGTH**self.tdim

    def dendrite_tip(self):
        """(y_tip, x_tip) [m]: the largest y where xi > 0.5 (linear interpolation
        along cell edges); (0, nan) without metal."""
        msh = self.domain.mesh
        V = self.V1[XI]
        ncell = msh.topology.index_map(self.tdim).size_local
        cells = V.dofmap.list[:ncell]
        gdm = msh.geometry.dofmap[:ncell]
        X = msh.geometry.x[gdm]  # (ncell, nv, 3)
        val = self.xi.x.array[cells]
        best_y, best_x = -np.inf, np.nan
        nv = cells.shape[1]
        ys, xs = [], []
        inside = val >= 0.5
        if inside.any():
            ys.append(X[..., 1][inside])
            xs.append(X[..., 0][inside])
        for i in range(nv):
            for j in range(i + 1, nv):
                a, b = val[:, i] - 0.5, val[:, j] - 0.5
                cross = a * b < 0.0
                if cross.any():
                    s = a[cross] / (a[cross] - b[cross])
                    ys.append(X[cross, i, 1] + s * (X[cross, j, 1] - X[cross, i, 1]))
                    xs.append(X[cross, i, 0] + s * (X[cross, j, 0] - X[cross, i, 0]))
        if ys:
            ys, xs = np.concatenate(ys), np.concatenate(xs)
            k = int(np.argmax(ys))
            best_y, best_x = float(ys[k]), float(xs[k])
        allv = self.comm.allgather((best_y, best_x))
        by, bx = max(allv, key=lambda p: p[0])
        if not np.isfinite(by):
            return 0.0, float("nan")
        return by * scales.LENGTH, bx * scales.LENGTH

    def max_pressure(self) -> float:
        """Largest pressure where xi > 0.5 [Pa] (0 without a pressure field or metal)."""
        pr = self.pressure_report
        if not isinstance(pr, fem.Function):
            return 0.0
        Vp = pr.function_space
        xi_p = fem.Function(Vp)
        xi_p.interpolate(self.xi)
        nloc = Vp.dofmap.index_map.size_local * Vp.dofmap.index_map_bs
        sel = xi_p.x.array[:nloc] > 0.5
        local = float(pr.x.array[:nloc][sel].max()) if sel.any() else -np.inf
        m = self.comm.allreduce(local, op=MPI.MAX)
        return m * scales.STRESS if np.isfinite(m) else 0.0

    def scalars(self, t: float) -> dict:
        """Per-step quantities (SI; 2D: per metre of depth; 3D: totals, so
        charge_C_m is in C, metal_area_m2 and the volumes in m^3)."""
        L_m = self.electrode_length * scales.LENGTH ** (self.tdim - 1)
        tip, _ = self.dendrite_tip()
        area = self.metal_area()
        return {
            "current_density_A_m2": self.last_current / L_m,
            "cell_voltage_V": self.cell_voltage(),
            "charge_C_m": self.charge_per_depth(),
            "metal_area_m2": area,
            "deposited_volume_m3_m": area - self.area0 * scales.LENGTH**self.tdim,
            "dendrite_tip_m": tip,
            "max_pressure_Pa": self.max_pressure(),
        } | ({"anode_plated_volume_m3_m": self.anode_plated_volume()} if self.reactive else {})

    def faraday_volume(self) -> float:
        """Volume of Na the passed charge corresponds to, q / (n F c_s) [m^3/m in 2D]."""
        return self.charge_per_depth() / (self.p["n"] * scales.FARADAY * self.p["c_s_mol_m3"])

    def anode_plated_volume(self) -> float:
        """Na plated onto the bare anode outside the domain [m^3/m in 2D]:
        q / (n F c_s) - (int xi dx - int xi_0 dx); 0 for a blocking electrode
        (up to the Newton tolerance)."""
        return self.faraday_volume() - (self.metal_area() - self.area0 * scales.LENGTH**self.tdim)

    def is_short_circuit(self, distance_m: float = 0.0):
        """(True, (x, y) [m]) when metal (xi > 0.5) reaches within distance_m of
        the counter electrode y = H; else (False, None)."""
        y, x = self.dendrite_tip()
        H = self.domain.height * scales.LENGTH
        if y >= H - max(distance_m, 0.0) - 1e-12 * H and y > 0.0:
            return True, (x, y)
        return False, None

    def dofs(self) -> int:
        return self.W.dofmap.index_map.size_global * self.W.dofmap.index_map_bs

    def parameters(self) -> dict:
        """Derived interface parameters in SI: W [J/m^3], kappa [J/m], L_eta [1/s], ..."""
        keys = ("W_J_m3", "kappa_J_m", "L_eta_1_s", "L_sigma_m3_J_s", "c_s_mol_m3", "thermal_voltage_V",
                "f_1_V", "planar_velocity_per_B_m_s", "stall_pressure_per_volt_Pa_V")
        return {k: self.p[k] for k in keys}


__all__ = ["ElectrochemistryProblem", "derived_parameters", "bv_bracket", "bv_overpotential"]
