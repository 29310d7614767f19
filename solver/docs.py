"""Generate docs/config.md, the config reference, from the schema.

    python3 -m solver.docs > docs/config.md     (or: make docs)

tests/test_config.py fails when docs/config.md is stale.
"""

from __future__ import annotations

import typing

from pydantic import BaseModel

from .config.schema import Config, Schedule, _model_of

HEADER = """# Config reference

Generated from the schema in `solver/config.py` by `make docs`; do not edit.
Physical values are SI numbers or unit strings (`"300 MPa"`, `"1 mA/cm^2"`,
`"30 deg"`); the unit column gives the SI unit a bare number is read in.
A *schedule* is `{points: [[t0, v0], [t1, v1], ...]}` (piecewise linear in
time, constant after the last point). Any key can be overridden on the
command line: `--set fracture.length_scale="0.4 um"`.
"""


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is typing.Literal:
        return " \\| ".join(repr(a).replace("'", "`") for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_type_name(a) for a in args if a is not type(None)) + (
            " (optional)" if type(None) in args else "")
    if origin in (list, tuple, dict):
        inner = ", ".join(_type_name(a) for a in args if a is not Ellipsis)
        return f"{origin.__name__}[{inner}]"
    if isinstance(annotation, type) and issubclass(annotation, Schedule):
        return "schedule"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def _unit(field) -> str:
    if isinstance(field.json_schema_extra, dict) and "unit" in field.json_schema_extra:
        return field.json_schema_extra["unit"]
    for meta in field.metadata:
        extra = getattr(meta, "json_schema_extra", None)
        if isinstance(extra, dict) and "unit" in extra:
            return extra["unit"]
    return ""


def _default(field) -> str:
    if field.default_factory is not None:
        return ""
    d = field.default
    if d is None or d is Ellipsis or repr(d) == "PydanticUndefined":
        return "required" if field.is_required() else ""
    return f"`{d}`"


def _rows(model: type[BaseModel], prefix: str, out: list[str], sections: list):
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = _model_of(field.annotation)
        if sub is not None and sub is not Schedule:
            kind = "list of" if typing.get_origin(field.annotation) is list else "section"
            out.append(f"| `{key}` | {kind} [{sub.__name__}](#{sub.__name__.lower()}) | | | {field.description or ''} |")
            if sub not in [s for s, _ in sections]:
                sections.append((sub, f"{key}[]." if kind == "list of" else f"{key}."))
            continue
        out.append(f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {_unit(field)} | {field.description or ''} |")


def render() -> str:
    lines = [HEADER]
    sections: list = [(Config, "")]
    i = 0
    while i < len(sections):
        model, prefix = sections[i]
        i += 1
        lines.append(f"\n## {model.__name__}\n")
        doc = (model.__doc__ or "").strip()
        if doc and model is not Config:
            lines.append(" ".join(doc.split()) + "\n")
        lines.append("| key | type | default | unit | meaning |")
        lines.append("|---|---|---|---|---|")
        _rows(model, prefix, lines, sections)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
