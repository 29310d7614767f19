"""fields.xdmf: the time series ParaView opens (coordinates in um, time in s).

DOLFINx writes the heavy data (fields.h5, in parallel) and an XDMF index
with one temporal collection per function, which ParaView's XDMF3 reader
opens while the run goes on. At every checkpoint and at the end of the run,
rank 0 rewrites the index (atomically) as ONE temporal collection whose steps
carry all fields (point data for P1 fields, cell data for DG0 ones):
ParaView then shows all fields on one grid and meshio's TimeSeriesReader
reads it.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from dolfinx import fem, io

XI = "https://www.w3.org/2001/XInclude"
ET.register_namespace("xi", XI)


def merge_index(path: Path, keep_until: float | None = None) -> None:
    """Rewrite a DOLFINx XDMF index as a single temporal collection.

    ``keep_until``: drop output times later than this (restart from a
    checkpoint earlier than the last output).
    """
    path = Path(path)
    tree = ET.parse(path)
    root = tree.getroot()
    domain = root.find("Domain")
    grids = list(domain)
    mesh_grid = next(g for g in grids if g.get("GridType") == "Uniform")
    steps: dict[float, list[ET.Element]] = {}
    include = None
    for coll in (g for g in grids if g.get("GridType") == "Collection"):
        for step in coll:
            tv = step.find("Time")
            if tv is None:
                continue
            t = float(tv.get("Value"))
            if keep_until is not None and t > keep_until * (1 + 1e-12) + 1e-300:
                continue
            include = include if include is not None else step.find(f"{{{XI}}}include")
            attrs = steps.setdefault(t, [])
            names = {a.get("Name") for a in attrs}
            attrs.extend(a for a in step.findall("Attribute") if a.get("Name") not in names)
    new_domain = ET.Element("Domain")
    new_domain.append(mesh_grid)
    series = ET.SubElement(new_domain, "Grid", Name="fields", GridType="Collection", CollectionType="Temporal")
    for t in sorted(steps):
        g = ET.SubElement(series, "Grid", Name="fields", GridType="Uniform")
        if include is not None:
            g.append(include)
        ET.SubElement(g, "Time", Value=repr(t))
        for a in steps[t]:
            g.append(a)
    root.remove(domain)
    root.append(new_domain)
    ET.indent(tree)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(b'<?xml version="1.0"?>\n<!DOCTYPE Xdmf SYSTEM "Xdmf.dtd" []>\n')
        tree.write(fh, encoding="utf-8", xml_declaration=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class FieldWriter:
    """Write the mesh once, then named functions at each output time [s].

    ``mode="a"`` appends to an existing file (restart); ``keep_until`` drops
    output times after the restart time from the index.
    """

    def __init__(self, path: Path, mesh, mode: str = "w", keep_until: float | None = None):
        self.path = Path(path)
        self.comm = mesh.comm
        if mode == "a" and not self.path.exists():
            mode = "w"
        if mode == "a" and self.comm.rank == 0:
            merge_index(self.path, keep_until)
        self.comm.barrier()
        self.file = io.XDMFFile(self.comm, str(self.path), mode)
        if mode == "w":
            self.file.write_mesh(mesh)

    def write(self, functions: list[fem.Function], t: float) -> None:
        for f in functions:
            self.file.write_function(f, t)

    def merge(self) -> None:
        """Rewrite the index as one collection (collective; rank 0 writes)."""
        self.comm.barrier()
        if self.comm.rank == 0:
            merge_index(self.path)
        self.comm.barrier()

    def close(self) -> None:
        self.file.close()
        self.comm.barrier()
        if self.comm.rank == 0 and self.path.exists():
            merge_index(self.path)
        self.comm.barrier()
