"""Where medpol keeps what it can rebuild but would rather not: the user's cache folder.

Every command starts by compiling its policies; work that depends only on medpol's own
files and its libraries' versions (the grammar's parse tables, the ICD-10-CM code list)
is kept under `$XDG_CACHE_HOME/medpol` (by default `~/.cache/medpol`) and rebuilt
whenever it is missing, unreadable or made by another version.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_file(name: str) -> Path | None:
    """The path of a cache file named `name`, its folder made; None when there is no
    writable cache folder (the caller then builds what it needs in memory)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "medpol"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder / name
