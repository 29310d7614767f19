"""fields.xdmf: the time series ParaView opens (coordinates in um, time in s).

DOLFINx writes the heavy data (HDF5, in parallel) and an XDMF index with one
temporal collection per function, which ParaView's XDMF3 reader opens while
the run goes on. At every checkpoint and at the end of the run, rank 0
rewrites ``fields.xdmf`` (atomically) as ONE temporal collection whose steps
carry all fields (point data for P1 fields, cell data for DG0 ones): ParaView
shows all fields on one grid.

A restarted run never appends to an HDF5 file that a killed process may have
left inconsistent: it writes a new segment (``fields_r1.h5``, ...) and the
index lists the steps of the earlier segments up to the restart time, then
the new ones (each step names its own mesh, since a restart may use another
number of ranks and so another node order). Read it with ParaView or
solver/io/series.py, which take every step's own mesh; meshio's
TimeSeriesReader takes the first step's mesh for all and is only right for
a run that was never restarted.
"""

from __future__ import annotations

import copy
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from dolfinx import fem, io

XI = "https://www.w3.org/2001/XInclude"
ET.register_namespace("xi", XI)
_INCLUDE = f"{{{XI}}}include"


def read_steps(path: Path, keep_until: float | None = None, explicit_mesh: bool = False):
    """(mesh grid, {t: (mesh elements, [Attribute])}) of an XDMF index.

    ``explicit_mesh``: replace each step's xi:include of the file's mesh by
    copies of its Topology/Geometry (so the step can live in another file).
    """
    root = ET.parse(path).getroot()
    grids = list(root.find("Domain"))
    mesh_grid = next(g for g in grids if g.get("GridType") == "Uniform")
    own_mesh = [copy.deepcopy(c) for c in mesh_grid if c.tag in ("Topology", "Geometry")]
    steps: dict[float, tuple[list, list]] = {}
    for coll in (g for g in grids if g.get("GridType") == "Collection"):
        for step in coll:
            tv = step.find("Time")
            if tv is None:
                continue
            t = float(tv.get("Value"))
            if keep_until is not None and t > keep_until * (1 + 1e-12):
                continue
            mesh_part = [c for c in step if c.tag in (_INCLUDE, "Topology", "Geometry")]
            if explicit_mesh and any(c.tag == _INCLUDE for c in mesh_part):
                mesh_part = [copy.deepcopy(c) for c in own_mesh]
            mesh_elems, attrs = steps.setdefault(t, (mesh_part, []))
            names = {a.get("Name") for a in attrs}
            attrs.extend(a for a in step.findall("Attribute") if a.get("Name") not in names)
    return mesh_grid, steps


def write_index(path: Path, mesh_grid, steps: dict) -> None:
    """Write one temporal collection 'fields' (temporary file + rename)."""
    root = ET.Element("Xdmf", Version="3.0")
    domain = ET.SubElement(root, "Domain")
    domain.append(mesh_grid)
    series = ET.SubElement(domain, "Grid", Name="fields", GridType="Collection", CollectionType="Temporal")
    for t in sorted(steps):
        mesh_elems, attrs = steps[t]
        g = ET.SubElement(series, "Grid", Name="fields", GridType="Uniform")
        for e in mesh_elems:
            g.append(e)
        ET.SubElement(g, "Time", Value=repr(t))
        for a in attrs:
            g.append(a)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(b'<?xml version="1.0"?>\n<!DOCTYPE Xdmf SYSTEM "Xdmf.dtd" []>\n')
        tree.write(fh, encoding="utf-8", xml_declaration=False)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def merge_index(path: Path, keep_until: float | None = None) -> None:
    """Rewrite a DOLFINx XDMF index in place as a single temporal collection."""
    mesh_grid, steps = read_steps(Path(path), keep_until)
    write_index(Path(path), mesh_grid, steps)


class FieldWriter:
    """Write the mesh once, then named functions at each output time [s].

    ``restart_time``: continue an existing ``fields.xdmf`` after a restart at
    that time [s]: earlier output up to it is kept, new output goes to a new
    HDF5 segment.
    """

    def __init__(self, path: Path, mesh, restart_time: float | None = None):
        self.path = Path(path)
        self.comm = mesh.comm
        self.base = None  # (mesh grid, steps) of the earlier segments
        self.segment = self.path
        if restart_time is not None:
            k = 1
            while self.path.with_name(f"{self.path.stem}_r{k}.xdmf").exists():
                k += 1
            self.segment = self.path.with_name(f"{self.path.stem}_r{k}.xdmf")
            if self.comm.rank == 0 and self.path.exists():
                try:
                    self.base = read_steps(self.path, keep_until=restart_time)
                except (ET.ParseError, StopIteration, AttributeError):
                    self.base = None  # an index cut by a kill: keep only the new output
        self.comm.barrier()
        self.file = io.XDMFFile(self.comm, str(self.segment), "w")
        self.file.write_mesh(mesh)

    def write(self, functions: list[fem.Function], t: float) -> None:
        for f in functions:
            self.file.write_function(f, t)

    def merge(self) -> None:
        """Rewrite fields.xdmf as one collection (collective; rank 0 writes)."""
        self.comm.barrier()
        if self.comm.rank == 0 and self.segment.exists():
            explicit = self.segment != self.path
            mesh_grid, steps = read_steps(self.segment, explicit_mesh=explicit)
            if self.base is not None:
                base_mesh, base_steps = self.base
                steps = {**base_steps, **steps}
                mesh_grid = base_mesh
            write_index(self.path, mesh_grid, steps)
        self.comm.barrier()

    def close(self) -> None:
        self.file.close()
        self.merge()
