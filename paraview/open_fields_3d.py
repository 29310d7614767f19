"""Open the fields.xdmf of a 3D run in ParaView: the dendrite, the cracks
and the grains (the 3D counterpart of open_fields.py).

    paraview --script=paraview/open_fields_3d.py        (set env NACRACK_FIELDS)
    pvpython paraview/open_fields_3d.py results/run3d/fields.xdmf [--time 0.5] [--screenshot out.png]
    xvfb-run -a pvpython paraview/open_fields_3d.py results/run3d/fields.xdmf --screenshot out.png   (headless)

Pipeline (all on the last output time unless --time is given):

- "metal surface": Contour of the point field metal at xi = 0.5 (blue);
- "cracked cells": damage averaged to the cells (PointDatatoCellData, as
  `solver report` does), Threshold d > 0.5 (red, half transparent);
- "grain i": each grain (Threshold grain_id = i) as a see-through grey
  surface, so the grain boundaries show inside the box (up to 64 grains);
- "slice x", "slice z": the mid-planes x = x_mid and z = z_mid coloured by
  xi (Inferno, 0..1; switch the colouring to damage in the GUI).

Coordinates are micrometres; time is seconds. The script prints one line
with the number of contour points, the xi range on the contour, the
number of cracked cells and the number of grains, so a test can check it.
"""

import argparse
import os
import sys

from paraview.simple import (  # noqa: F401  (pvpython)
    ColorBy,
    Contour,
    ExtractSurface,
    GetActiveViewOrCreate,
    GetAnimationScene,
    GetColorTransferFunction,
    GetScalarBar,
    PointDatatoCellData,
    Render,
    ResetCamera,
    SaveScreenshot,
    Show,
    Slice,
    Threshold,
    Xdmf3ReaderT,
)

from paraview import servermanager

MAX_GRAINS = 64


def _threshold(source, array, lo, hi, name):
    t = Threshold(registrationName=name, Input=source)
    t.Scalars = array
    try:  # ParaView >= 5.10
        t.LowerThreshold, t.UpperThreshold = lo, hi
        t.ThresholdMethod = "Between"
    except AttributeError:  # pragma: no cover - older ParaView
        t.ThresholdRange = [lo, hi]
    return t


def _solid(display, rgb):
    """A display in one colour (no colouring by an array)."""
    try:
        ColorBy(display, None)
    except RuntimeError:  # an empty output has no association to switch off
        pass
    display.AmbientColor = display.DiffuseColor = list(rgb)


def _cells(source, time):
    source.UpdatePipeline(time)
    return servermanager.Fetch(source).GetNumberOfCells()


def open_fields_3d(path, time=None, screenshot=None):
    reader = Xdmf3ReaderT(registrationName="fields", FileName=[os.path.abspath(path)])
    times = list(reader.TimestepValues or [])
    t = time if time is not None else (times[-1] if times else 0.0)
    reader.UpdatePipeline(t)
    point = list(reader.PointData.keys())
    cell = list(reader.CellData.keys())
    if "metal" not in point:
        sys.exit(f"error: {path} has no point field 'metal' (point fields {point})")
    scene = GetAnimationScene()
    scene.UpdateAnimationUsingDataTimeSteps()
    scene.AnimationTime = t
    view = GetActiveViewOrCreate("RenderView")
    view.Background = [1.0, 1.0, 1.0]
    try:
        view.UseColorPaletteForBackground = 0
    except AttributeError:  # pragma: no cover - older ParaView
        pass
    (x0, x1, y0, y1, z0, z1) = reader.GetDataInformation().GetBounds()
    mid = [0.5 * (x0 + x1), 0.5 * (y0 + y1), 0.5 * (z0 + z1)]

    outline = Show(reader, view)
    outline.SetRepresentationType("Outline")
    _solid(outline, [0.0, 0.0, 0.0])

    iso = Contour(registrationName="metal surface", Input=reader)
    iso.ContourBy = ["POINTS", "metal"]
    iso.Isosurfaces = [0.5]
    iso.ComputeScalars = 1
    iso.UpdatePipeline(t)
    iso_data = servermanager.Fetch(iso)
    n_iso = iso_data.GetNumberOfPoints()
    xi = iso_data.GetPointData().GetArray("metal")
    xi_range = xi.GetRange() if (xi is not None and n_iso) else (float("nan"), float("nan"))
    d_iso = Show(iso, view)
    _solid(d_iso, [0.25, 0.41, 0.88])

    n_cracked = 0
    if "damage" in point or "damage" in cell:
        source = reader
        if "damage" in point:
            source = PointDatatoCellData(registrationName="damage per cell", Input=reader)
            source.ProcessAllArrays = 0
            source.PointDataArraytoprocess = ["damage"]
            source.PassPointData = 0
        cracked = _threshold(source, ["CELLS", "damage"], 0.5, 1.0e300, "cracked cells")
        n_cracked = _cells(cracked, t)
        d_cr = Show(cracked, view)
        _solid(d_cr, [0.85, 0.05, 0.05])
        d_cr.Opacity = 0.5  # the metal surface shows through, as in `solver report`

    grains = []
    if "grain_id" in cell:
        lo, hi = reader.CellData["grain_id"].GetRange()
        ids = list(range(int(round(lo)), int(round(hi)) + 1))
        for g in ids[:MAX_GRAINS]:
            one = _threshold(reader, ["CELLS", "grain_id"], g - 0.5, g + 0.5, f"grain {g}")
            if _cells(one, t) == 0:
                continue
            surf = ExtractSurface(registrationName=f"grain {g} surface", Input=one)
            d_g = Show(surf, view)
            _solid(d_g, [0.55, 0.55, 0.55])
            d_g.Opacity = 0.1
            grains.append(g)

    lut = GetColorTransferFunction("metal")
    try:
        lut.ApplyPreset("Inferno (matplotlib)", True)
    except Exception:  # pragma: no cover - preset names differ between versions
        pass
    for axis, normal in (("x", [1.0, 0.0, 0.0]), ("z", [0.0, 0.0, 1.0])):
        sl = Slice(registrationName=f"slice {axis}", Input=reader)
        sl.SliceType = "Plane"
        sl.SliceType.Origin = mid
        sl.SliceType.Normal = normal
        d_sl = Show(sl, view)
        ColorBy(d_sl, ("POINTS", "metal"))
        d_sl.SetScalarBarVisibility(view, True)
    lut.AutomaticRescaleRangeMode = "Never"
    lut.RescaleTransferFunction(0.0, 1.0)
    bar = GetScalarBar(lut, view)
    bar.TitleFontSize, bar.LabelFontSize, bar.ScalarBarLength = 10, 9, 0.3
    bar.RangeLabelFormat = "%.2g"
    bar.Title, bar.ComponentTitle = "Na metal xi", ""
    bar.TitleColor = bar.LabelColor = [0.0, 0.0, 0.0]
    bar.WindowLocation = "Lower Right Corner"

    view.CameraPosition = [mid[0] + 2.0 * (x1 - x0), mid[1] + 1.5 * (y1 - y0), mid[2] + 3.2 * (z1 - z0) + 2.0 * (x1 - x0)]
    view.CameraFocalPoint = mid
    view.CameraViewUp = [0.0, 1.0, 0.0]
    ResetCamera()
    Render()
    print(f"opened {path} at t = {t:.6g} s: {len(times)} time steps; metal surface xi = 0.5: {n_iso} points, "
          f"xi on it {xi_range[0]:.9f} .. {xi_range[1]:.9f}; cracked cells (d > 0.5): {n_cracked}; "
          f"grains: {len(grains)}; slices x = {mid[0]:.6g} um, z = {mid[2]:.6g} um")
    if screenshot:
        SaveScreenshot(screenshot, view, ImageResolution=[1000, 800])
        print(f"wrote {screenshot}")
    return reader


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("fields", nargs="?", default=os.environ.get("NACRACK_FIELDS", "results/run3d/fields.xdmf"))
    p.add_argument("--time", type=float, default=None, help="output time [s] (default: the last)")
    p.add_argument("--screenshot", default=None)
    args = p.parse_args(sys.argv[1:])
    open_fields_3d(args.fields, args.time, args.screenshot)
