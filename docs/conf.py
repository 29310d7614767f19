"""Sphinx configuration of the nacrack documentation.

Built by `make docs` inside the FEniCSx environment (docker/envrun):

    sphinx-build -W --keep-going -b html docs build/docs

Pages generated at build time, so they never go stale:
- docs/config.md, the config reference, from the schema (the module of the
  `solver` package that defines `render()` for it, today solver.docs);
- docs/api/*.rst, one page per module of the `solver` package, found by
  walking the package (so a module that moves is followed);
- docs/validation-report.md, the last `make validate` run's report
  (validation/report.md and its figures).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

project = "nacrack"
author = "the nacrack developers"
copyright = "the nacrack developers"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
html_theme = "furo"
html_title = "nacrack"
html_static_path: list[str] = []
numfig = False

autodoc_default_options = {
    "members": True,
    "ignore-module-all": True,   # document each object where it is defined, once
}
autodoc_member_order = "bysource"
autodoc_typehints = "none"


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _modules(package: str = "solver") -> list[str]:
    """Every module of the package, found by walking it (skips __main__)."""
    pkg = importlib.import_module(package)
    names = [package]
    for info in pkgutil.walk_packages(pkg.__path__, prefix=package + "."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        names.append(info.name)
    return sorted(names)


def _config_reference() -> None:
    """docs/config.md from the schema: the solver module with render()."""
    for name in _modules():
        if name.rsplit(".", 1)[-1] != "docs":
            continue
        render = getattr(importlib.import_module(name), "render", None)
        if callable(render):
            _write_if_changed(DOCS / "config.md", render())
            return
    raise RuntimeError("no solver module named 'docs' with a render() function: "
                       "cannot generate docs/config.md from the schema")


def _api_pages() -> None:
    """docs/api/<module>.rst for every module of the solver package."""
    out = DOCS / "api"
    out.mkdir(exist_ok=True)
    names = _modules()
    keep = set()
    for name in names:
        title = f"``{name}``"
        text = f"{title}\n{'=' * len(title)}\n\n.. automodule:: {name}\n"
        path = out / f"{name}.rst"
        keep.add(path.name)
        _write_if_changed(path, text)
    for stale in out.glob("*.rst"):
        if stale.name not in keep:
            stale.unlink()


def _docstring_as_text(app, what, name, obj, options, lines):
    """The package's docstrings are plain text with ASCII formulas, not
    reStructuredText: show them verbatim (a literal block) so that their
    layout is kept and no markup is guessed."""
    if not lines or not any(line.strip() for line in lines):
        return
    body = list(lines)
    lines[:] = ["::", ""] + ["    " + line if line.strip() else "" for line in body] + [""]


def _validation_page() -> None:
    """docs/validation-report.md from validation/report.md, the record of the
    last ``make validate`` (committed with its figures); the figures are
    copied to docs/_validation_figures/. Without a report, a page that says so."""
    import shutil

    report = ROOT / "validation" / "report.md"
    figures = DOCS / "_validation_figures"
    if figures.exists():
        shutil.rmtree(figures)
    if not report.exists():
        _write_if_changed(DOCS / "validation-report.md", "(validation-report)=\n# Validation report\n\n"
                          "No `validation/report.md` in this checkout: run `make validate`.\n")
        return
    if (ROOT / "validation" / "figures").is_dir():
        shutil.copytree(ROOT / "validation" / "figures", figures)
    text = report.read_text().replace("](figures/", "](_validation_figures/")
    text = text.replace("# Validation report", "(validation-report)=\n# Validation report", 1)
    _write_if_changed(DOCS / "validation-report.md", text)


_config_reference()
_api_pages()
_validation_page()


def setup(app):
    app.connect("autodoc-process-docstring", _docstring_as_text)
