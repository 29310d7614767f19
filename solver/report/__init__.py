"""``solver report``: figures of a finished run (``figures``) and the
off-screen rendering helpers they use (``render``). No DOLFINx."""

from .figures import colour_range, read_scalars, report, snapshot_fields

__all__ = ["report", "read_scalars", "snapshot_fields", "colour_range"]
