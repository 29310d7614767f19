"""Which BLAS the process runs on (the dense kernels of every MUMPS factorisation).

MUMPS spends a direct solve in dense BLAS 3 (dgemm, dtrsm) on its frontal
matrices. With the reference (netlib) BLAS the coupled system of
``micro_single_grain`` (46k DOFs, 11.6M entries in the factors) took 0.86 s
per factorisation on one core, with OpenBLAS 0.25 s, the same factors to the
last digit (docs/studies/coupling-cost.md). The run logs the library it found
and warns when it is the reference one.
"""

from __future__ import annotations

import re

# name fragments of mapped shared objects -> the implementation they belong to
_OPTIMISED = (("openblas", "OpenBLAS"), ("mkl", "Intel MKL"), ("blis", "BLIS"), ("atlas", "ATLAS"),
              ("flexiblas", "FlexiBLAS"), ("accelerate", "Apple Accelerate"))
_BLAS_FILE = re.compile(r"(\S*/)?lib(open)?blas[^/\s]*\.so[^/\s]*$|\S*(mkl_core|blis|flexiblas|atlas)\S*\.so\S*$")


def classify(mapped_paths: list[str]) -> tuple[str, bool]:
    """(name, optimised) of the BLAS among the paths of mapped shared objects:
    an optimised implementation wherever it appears in a path (Debian maps
    OpenBLAS as .../openblas-serial/libblas.so.3), else the reference BLAS
    when a plain libblas is mapped, else ('none found', True)."""
    blas = [p for p in mapped_paths if _BLAS_FILE.search(p)]
    for p in blas:
        for key, name in _OPTIMISED:
            if key in p.lower():
                return f"{name} ({p})", True
    if blas:
        return f"reference BLAS ({blas[0]})", False
    return "none found", True


def blas_in_use() -> tuple[str, bool]:
    """(name, optimised) of the BLAS mapped into this process (Linux:
    /proc/self/maps; elsewhere ('unknown', True)). Call after PETSc is loaded."""
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({line.split()[-1] for line in fh if "/" in line and ".so" in line})
    except OSError:
        return "unknown", True
    return classify(paths)
