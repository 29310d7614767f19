"""PETSc options from the config (``solver.petsc.<solver>``), checked before a run.

PETSc silently ignores an option nobody queries (a typo, an option of
another KSP/PC type) and only lists it at exit under ``-options_left``. Here
each sub-solver's options (its defaults plus the config's) are set under a
throwaway prefix, a KSP of the configured types is set up and run once on a
small matrix of the sub-solver's block size (on PETSC_COMM_SELF: no
collective, the same verdict on every rank), and the options PETSc did not
query are read back with ``PetscOptionsLeftGet`` (through ctypes: petsc4py
does not wrap it). A config option left unused is refused with its key.

Options that PETSc only queries in situations a tiny solve does not reach
(e.g. monitors of a failed solve) are rare; ``ALWAYS_ACCEPTED`` lists the
generic viewer and monitor options, which are accepted as they are.

No DOLFINx here: ``solver check`` uses it (with petsc4py only).
"""

from __future__ import annotations

import ctypes
import difflib

from .numerics.petsc_db import write_options

# Generic options that any PETSc object queries at view/destroy time, or that
# only take effect in situations the throwaway solve does not reach.
ALWAYS_ACCEPTED = ("ksp_view", "ksp_monitor", "ksp_converged_reason", "ksp_error_if_not_converged",
                   "ksp_monitor_true_residual", "pc_view", "options_left", "log_view", "info")
CHECK_PREFIX = "nacrackcheck_"
# block sizes of the sub-solvers' matrices (2D; 3D mechanics has 3, checked with the 2D size)
BLOCK_SIZE = {"potential": 1, "mechanics": 2, "electrochemistry": 3, "fracture": 1, "coupled": "coupled"}


def _petsc_lib():
    """The libpetsc already loaded by petsc4py (same handle)."""
    with open("/proc/self/maps") as fh:
        paths = {line.split()[-1] for line in fh if "libpetsc" in line and ".so" in line}
    for p in sorted(paths):
        lib = ctypes.CDLL(p)
        if hasattr(lib, "PetscOptionsLeftGet"):
            return lib
    raise OSError("libpetsc with PetscOptionsLeftGet not found")


def unused_options(prefix: str = "") -> list[str]:
    """Names (without '-') in the global options database that no PETSc
    object has queried, starting with ``prefix``."""
    from petsc4py import PETSc

    lib = _petsc_lib()
    int_t = ctypes.c_int64 if PETSc.IntType().itemsize == 8 else ctypes.c_int32
    n = int_t(0)
    names = ctypes.POINTER(ctypes.c_char_p)()
    values = ctypes.POINTER(ctypes.c_char_p)()
    err = lib.PetscOptionsLeftGet(None, ctypes.byref(n), ctypes.byref(names), ctypes.byref(values))
    if err:
        raise RuntimeError(f"PetscOptionsLeftGet returned {err}")
    out = [names[i].decode() for i in range(n.value)]
    if hasattr(lib, "PetscOptionsLeftRestore"):
        lib.PetscOptionsLeftRestore(None, ctypes.byref(n), ctypes.byref(names), ctypes.byref(values))
    return [o.lstrip("-") for o in out if o.lstrip("-").startswith(prefix)]


def defaults_for(name: str) -> dict:
    """The project's default options of sub-solver ``name`` (numerics/petsc_defaults.py)."""
    from .numerics.petsc_defaults import DEFAULTS

    return dict(DEFAULTS.get(name, DEFAULTS["potential"]))


def _matrix(bs: int, blocks: int = 24):
    """A small SPD block matrix: 1D Laplacian (x) I_bs + a weak coupling between the fields."""
    from petsc4py import PETSc

    n = bs * blocks
    A = PETSc.Mat().createAIJ([n, n], bsize=bs, nnz=3 * bs, comm=PETSc.COMM_SELF)
    for i in range(blocks):
        for j in (i - 1, i, i + 1):
            if 0 <= j < blocks:
                for a in range(bs):
                    for b in range(bs):
                        v = (2.0 + 0.1 * bs if i == j else -1.0) if a == b else (0.05 if i == j else 0.0)
                        if v:
                            A.setValue(i * bs + a, j * bs + b, v)
    A.assemble()
    return A


def _trial(prefix: str, options: dict, bs: int) -> list[str]:
    """Set ``options`` under ``prefix``, solve once, return the unused ones."""
    from petsc4py import PETSc

    opts = PETSc.Options()
    write_options(opts, prefix, options)
    blocks = None
    if bs == "coupled":  # the monolithic system: a MatNest with the mechanics and electrochemistry splits
        blocks = [_matrix(2), _matrix(3)]
        A = PETSc.Mat().createNest([[blocks[0], None], [None, blocks[1]]], comm=PETSc.COMM_SELF)
    else:
        A = _matrix(bs)
    ksp = PETSc.KSP().create(PETSc.COMM_SELF)
    try:
        ksp.setOptionsPrefix(prefix)
        ksp.setOperators(A)
        if blocks is not None:
            ksp.getPC().setType("fieldsplit")
            isets = A.getNestISs()[0]
            ksp.getPC().setFieldSplitIS(("mechanics", isets[0]), ("electrochemistry", isets[1]))
        ksp.setFromOptions()
        b, x = A.createVecs()
        b.set(1.0)
        try:
            ksp.setUp()
            ksp.solve(b, x)
        except PETSc.Error:
            pass  # a solve that fails still queried its options
        return [o[len(prefix):] for o in unused_options(prefix)]
    finally:
        ksp.destroy()
        A.destroy()
        for B in blocks or ():
            B.destroy()
        for key in list(opts.getAll()):
            if key.startswith(prefix):
                opts.delValue(key)


def check_petsc_options(petsc: dict, dim: int = 2) -> list[str]:
    """One line per option in ``solver.petsc`` that the configured solver does not use."""
    from petsc4py import PETSc

    problems = []
    for name, given in (petsc or {}).items():
        if not given:
            continue
        main = {k: v for k, v in given.items() if not str(k).lstrip("-").startswith("fallback_")}
        fallback = {str(k).lstrip("-")[len("fallback_"):]: v for k, v in given.items()
                    if str(k).lstrip("-").startswith("fallback_")}
        bs = BLOCK_SIZE.get(name, 1) if not (name == "mechanics" and dim == 3) else 3
        trials = []
        if main:
            trials.append(("", {**defaults_for(name), **main}, main))
        if fallback:
            from .numerics.petsc_defaults import DIRECT_OPTIONS

            trials.append(("fallback_", {**DIRECT_OPTIONS, **fallback}, fallback))
        for sub, options, user in trials:
            prefix = f"{CHECK_PREFIX}{name}_{sub}"
            try:
                unused = set(_trial(prefix, options, bs))
            except (OSError, RuntimeError, AttributeError, PETSc.Error) as exc:
                problems.append(f"solver.petsc.{name}: the options could not be checked ({exc}); expected "
                                "PETSc options of a KSP/PC")
                continue
            kinds = f"ksp_type {options.get('ksp_type', '?')}, pc_type {options.get('pc_type', '?')}"
            for key in user:
                k = str(key).lstrip("-")
                if k in unused and k not in ALWAYS_ACCEPTED:
                    close = difflib.get_close_matches(k, list(defaults_for(name)), n=1, cutoff=0.7)
                    hint = f"; did you mean '{close[0]}'?" if close else ""
                    problems.append(f"solver.petsc.{name}.{sub}{k} = {user[key]!r}: not an option the {name} "
                                    f"solver ({kinds}) uses; PETSc would ignore it{hint}")
    return problems


PREFIXES = ("potential_", "mechanics_", "electrochemistry_", "fracture_", "coupled_")


def drop_unused_defaults(petsc: dict | None) -> list[str]:
    """Remove the project's own default options that no solver queried (a
    fieldsplit default under a user's pc_type, a sub-solver never built), so
    that PETSc's exit report lists only what the user gave. Returns the names."""
    from petsc4py import PETSc

    user = {f"{name}_{str(k).lstrip('-')}" for name, given in (petsc or {}).items() for k in (given or {})}
    try:
        left = unused_options("")
    except (OSError, RuntimeError, AttributeError):
        return []
    opts, dropped = PETSc.Options(), []
    for key in left:
        if key.startswith(PREFIXES) and key not in user:
            opts.delValue(key)
            dropped.append(key)
    return dropped
