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
