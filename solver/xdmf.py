"""fields.xdmf: the time series ParaView opens (coordinates in um)."""

from __future__ import annotations

from pathlib import Path

from dolfinx import fem, io


class FieldWriter:
    """Writes the mesh once and named functions at each output time.

    P1 fields are written as point data, DG0 fields (grain id, orientation)
    as cell data. Time values are seconds.
    """

    def __init__(self, path: Path, mesh, mode: str = "w"):
        self.path = Path(path)
        self.file = io.XDMFFile(mesh.comm, str(self.path), mode)
        if mode == "w":
            self.file.write_mesh(mesh)

    def write(self, functions: list[fem.Function], t: float) -> None:
        for f in functions:
            self.file.write_function(f, t)

    def close(self) -> None:
        self.file.close()
