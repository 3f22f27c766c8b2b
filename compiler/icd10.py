"""ICD-10-CM code validation against the real code set, fast enough for every compile.

The code set comes from simple-icd-10-cm, whose import parses the whole classification
(seconds). Every `medpol eval` checks its policy, so the codes are kept in a plain
list in the user's cache, one per line, keyed by the library's version, and read back
in milliseconds; the library is imported only to build that list.
"""

from __future__ import annotations

import functools
import os
from importlib import metadata
from pathlib import Path

from medpol.dsl.cache import cache_file


def _cache_file() -> Path | None:
    try:
        version = metadata.version("simple-icd-10-cm")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return cache_file(f"icd10cm-{version}-codes.txt")


@functools.cache
def _codes() -> frozenset[str]:
    path = _cache_file()
    if path is not None:
        try:
            return frozenset(path.read_text(encoding="ascii").split())
        except (OSError, ValueError):
            pass
    import simple_icd_10_cm as icd

    # Chapters ("1") and blocks ("A00-A09") organise the classification; they are not codes.
    codes = frozenset(c.replace(".", "") for c in icd.get_all_codes(True) if "-" not in c and c[:1].isalpha())
    if path is None:
        return codes  # no writable cache: this process keeps the set in memory
    try:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text("\n".join(sorted(codes)) + "\n", encoding="ascii")
        tmp.replace(path)  # atomic: parallel first runs never read half a file
    except OSError:
        pass  # no writable cache: this process keeps the set in memory
    return codes


def is_valid(code: str) -> bool:
    """Whether `code` (with or without the dot) is a code or category of ICD-10-CM."""
    return code.replace(".", "").upper() in _codes()
