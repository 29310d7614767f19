"""The environment is defined once: docker/packages.txt and docker/mpi.env
feed both docker/envrun and docker/Dockerfile."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _entries(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def test_dockerfile_and_envrun_use_the_one_package_list():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    envrun = (ROOT / "docker" / "envrun").read_text()
    assert "COPY docker/packages.txt" in dockerfile and "packages.txt" in envrun
    packages = _entries(ROOT / "docker" / "packages.txt")
    for required in ("python3-dolfinx-real", "python3-gmsh", "python3-adios4dolfinx", "openmpi-bin", "python3-paraview"):
        assert required in packages


def test_dockerfile_mpi_settings_match_mpi_env():
    wanted = set(_entries(ROOT / "docker" / "mpi.env"))
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    in_docker = set(re.findall(r"((?:OMPI|PRTE|OMP|OPENBLAS)\w*=\S+?)(?:\s|\\|$)", dockerfile))
    assert wanted == in_docker


def test_running_inside_the_environment():
    import dolfinx

    major, minor = (int(x) for x in dolfinx.__version__.split(".")[:2])
    assert (major, minor) >= (0, 9)


def test_no_registry_host_names_in_the_tree():
    hosts = re.compile(r"(deb\.debian\.org|pypi\.org|registry\.npmjs|files\.pythonhosted)")
    for path in ROOT.rglob("*"):
        if path.is_file() and not {".git", "build", "results"} & set(path.parts) and path.suffix != ".h5":
            try:
                assert not hosts.search(path.read_text(errors="ignore")), path
            except IsADirectoryError:
                pass


def test_blas_classifier_tells_reference_from_optimised():
    """numerics/blas.py: Debian maps OpenBLAS under the reference name
    (.../openblas-serial/libblas.so.3), so the directory decides."""
    from solver.numerics.blas import classify

    ref = "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.12.1"
    name, optimised = classify(["/usr/lib/x86_64-linux-gnu/libpetsc_real.so.3.22", ref])
    assert not optimised and ref in name
    name, optimised = classify(["/usr/lib/x86_64-linux-gnu/openblas-serial/libblas.so.3", ref])
    assert optimised and name.startswith("OpenBLAS")
    assert classify(["/opt/intel/lib/libmkl_core.so.2"])[1]
    assert classify(["/usr/lib/libc.so.6"]) == ("none found", True)


def test_mumps_runs_on_an_optimised_blas():
    """The package list brings OpenBLAS: with the reference BLAS a MUMPS
    factorisation of micro_single_grain's coupled system took 3.5x longer
    (0.86 s against 0.25 s). Fails on an environment without it."""
    from petsc4py import PETSc

    A = PETSc.Mat().createAIJ([4, 4], nnz=1, comm=PETSc.COMM_SELF)  # one LU solve loads MUMPS and its BLAS
    for i in range(4):
        A.setValue(i, i, 2.0)
    A.assemble()
    ksp = PETSc.KSP().create(PETSc.COMM_SELF)
    ksp.setOperators(A)
    ksp.setType("preonly")
    ksp.getPC().setType("lu")
    ksp.getPC().setFactorSolverType("mumps")
    b, x = A.createVecs()
    b.set(1.0)
    ksp.solve(b, x)
    assert abs(x.sum() - 2.0) < 1e-12
    from solver.numerics.blas import blas_in_use

    name, optimised = blas_in_use()
    assert optimised and name != "none found", name
