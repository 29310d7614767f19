"""Open a run's fields.xdmf in ParaView with sensible colour maps.

    paraview --script=paraview/open_fields.py          (set FIELDS below or env NACRACK_FIELDS)
    pvpython paraview/open_fields.py results/demo/fields.xdmf [--field metal] [--screenshot out.png]
    xvfb-run -a pvpython paraview/open_fields.py results/demo/fields.xdmf --screenshot out.png   (headless)

Coordinates are micrometres; time is seconds. Colour maps: metal (xi) and
damage in a sequential map 0..1, potential diverging, pressure and stresses
in 'Cool to Warm', grain id categorical.
"""

import argparse
import os
import sys

from paraview.simple import (  # noqa: F401  (pvpython)
    ColorBy,
    GetActiveViewOrCreate,
    GetAnimationScene,
    GetColorTransferFunction,
    Render,
    ResetCamera,
    SaveScreenshot,
    Show,
    Xdmf3ReaderT,
)

PRESETS = {
    "metal": ("Inferno (matplotlib)", (0.0, 1.0)),
    "damage": ("Reds", (0.0, 1.0)),
    "potential": ("Cool to Warm", None),
    "concentration": ("Viridis (matplotlib)", None),
    "hydrostatic_pressure": ("Cool to Warm", None),
    "max_principal_stress": ("Cool to Warm", None),
    "grain_id": ("Glasbey", None),
    "orientation": ("Twilight", (0.0, 3.14159)),
}


def open_fields(path, field=None, screenshot=None):
    # the XDMF3 reader (the legacy XDMF2 reader does not follow the xi:include)
    reader = Xdmf3ReaderT(registrationName="fields", FileName=[os.path.abspath(path)])
    times = list(reader.TimestepValues or [])
    reader.UpdatePipeline(times[-1] if times else 0.0)
    point = list(reader.PointData.keys())
    cell = list(reader.CellData.keys())
    view = GetActiveViewOrCreate("RenderView")
    display = Show(reader, view)
    scene = GetAnimationScene()
    scene.UpdateAnimationUsingDataTimeSteps()
    scene.AnimationTime = times[-1] if times else 0.0
    if field is None:
        field = next((f for f in ("metal", "damage", "potential") if f in point), (point or cell or [None])[0])
    if field is not None:
        ColorBy(display, ("POINTS" if field in point else "CELLS", field))
        lut = GetColorTransferFunction(field)
        preset, rng = PRESETS.get(field, ("Cool to Warm", None))
        try:
            lut.ApplyPreset(preset, True)
        except Exception:
            pass
        if rng is not None:
            lut.RescaleTransferFunction(*rng)
        else:
            display.RescaleTransferFunctionToDataRange(True, False)
        display.SetScalarBarVisibility(view, True)
    view.InteractionMode = "2D"
    ResetCamera()
    Render()
    print(f"opened {path}: point fields {point}, cell fields {cell}, "
          f"{len(times)} time steps, coloured by {field}")
    if screenshot:
        SaveScreenshot(screenshot, view, ImageResolution=[1000, 600])
        print(f"wrote {screenshot}")
    return reader


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("fields", nargs="?", default=os.environ.get("NACRACK_FIELDS", "results/demo/fields.xdmf"))
    p.add_argument("--field", default=None)
    p.add_argument("--screenshot", default=None)
    args = p.parse_args(sys.argv[1:])
    open_fields(args.fields, args.field, args.screenshot)
