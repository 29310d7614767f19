"""Read the time series of fields.xdmf without DOLFINx (h5py + XML).

Each step is read with its own mesh. After a restart the new steps live in
another HDF5 segment whose node and cell order differ from the first
segment's (solver/io/xdmf.py), so a reader that takes the mesh of the first
step for all steps (meshio's TimeSeriesReader) pairs the values of a
restarted step with the wrong nodes. ParaView's XDMF3 reader and this module
read the mesh of every step.

Coordinates are in micrometres, time in seconds (as written).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_INCLUDE = "{http://www.w3.org/2001/XInclude}include"
_INCLUDE_2001 = "{https://www.w3.org/2001/XInclude}include"


@dataclass
class Frame:
    """One output time: t [s], points (n, gdim) [um], cells (m, k) node
    indices, point data and cell data by field name."""

    t: float
    points: np.ndarray
    cells: np.ndarray
    cell_type: str
    point_data: dict[str, np.ndarray] = field(default_factory=dict)
    cell_data: dict[str, np.ndarray] = field(default_factory=dict)


class FieldSeries:
    """The steps of a fields.xdmf index; ``frame(k)`` reads step k."""

    def __init__(self, path: Path):
        self.path = Path(path)
        root = ET.parse(self.path).getroot()
        grids = list(root.find("Domain"))
        self._mesh = next(g for g in grids if g.get("GridType") == "Uniform")
        self._steps = []
        for coll in (g for g in grids if g.get("GridType") == "Collection"):
            for step in coll:
                if step.find("Time") is not None:
                    self._steps.append(step)
        self._steps.sort(key=lambda s: float(s.find("Time").get("Value")))
        self._files: dict[Path, object] = {}

    def __len__(self) -> int:
        return len(self._steps)

    def times(self) -> list[float]:
        """The output times [s], in order."""
        return [float(st.find("Time").get("Value")) for st in self._steps]

    def frame(self, k: int) -> Frame:
        step = self._steps[k]
        own = step.find("Topology") is not None
        if not own and step.find(_INCLUDE) is None and step.find(_INCLUDE_2001) is None:
            raise ValueError(f"{self.path}: step {k} has neither a mesh nor a reference to one")
        mesh = step if own else self._mesh
        topo, geo = mesh.find("Topology"), mesh.find("Geometry")
        cells = self._data(topo.find("DataItem")).astype(np.int64)
        points = self._data(geo.find("DataItem"))
        out = Frame(float(step.find("Time").get("Value")), points, cells, topo.get("TopologyType").lower())
        for a in step.findall("Attribute"):
            values = self._data(a.find("DataItem"))
            target = out.point_data if a.get("Center") == "Node" else out.cell_data
            target[a.get("Name")] = values
        return out

    def _data(self, item) -> np.ndarray:
        if item.get("Format") != "HDF":
            raise ValueError(f"{self.path}: DataItem format {item.get('Format')!r} (expected 'HDF')")
        fname, dataset = item.text.strip().split(":", 1)
        h5 = self._open(self.path.parent / fname)
        return np.asarray(h5[dataset])

    def _open(self, path: Path):
        import h5py

        if path not in self._files:
            self._files[path] = h5py.File(path, "r")
        return self._files[path]

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RunSeries:
    """Every field file of a run directory as one time series: fields.xdmf
    and, on the meshes of an adaptive run (mesh.adapt), fields_0001.xdmf,
    fields_0002.xdmf, ... Frames in time order; each carries its own mesh."""

    def __init__(self, directory: Path):
        directory = Path(directory)
        paths = [directory / "fields.xdmf"] + sorted(directory.glob("fields_[0-9][0-9][0-9][0-9].xdmf"))
        self._series = [FieldSeries(p) for p in paths if p.exists()]
        self._index = sorted((t, i, k) for i, s in enumerate(self._series) for k, t in enumerate(s.times()))

    def __len__(self) -> int:
        return len(self._index)

    def frame(self, k: int) -> Frame:
        _, i, j = self._index[k]
        return self._series[i].frame(j)

    def close(self) -> None:
        for s in self._series:
            s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
