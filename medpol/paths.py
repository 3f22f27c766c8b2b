"""Find the files a command is given: files as named, folders searched recursively."""

from __future__ import annotations

from pathlib import Path

import click


def files_under(paths: tuple[str, ...], pattern: str) -> list[Path]:
    """The files named, and those matching `pattern` under the folders named, in a stable order."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(path.rglob(pattern)))
        elif path.exists():
            files.append(path)
        else:
            raise click.UsageError(f"`{raw}` does not exist")
    return files
