"""`medpol fmt`: rewrite policy files in the canonical layout, or check that they are in it.

Exit codes follow the rest of the command line: 0 when every file is (or now is)
formatted, 1 when a file does not parse or, with --check, is not formatted, 2 for
usage errors such as a path that does not exist.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import click

from medpol.dsl.diagnostics import PolicyError
from medpol.paths import files_under


def _policy_files(paths: tuple[str, ...]) -> list[Path]:
    return files_under(paths, "*.policy")


def _diff(path: Path, text: str, formatted: str) -> str:
    lines = difflib.unified_diff(
        text.splitlines(keepends=True),
        formatted.splitlines(keepends=True),
        fromfile=str(path),
        tofile=f"{path} (formatted)",
    )
    # Only the original can lack a final newline; mark it as diff and patch do.
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


@click.command("fmt")
@click.argument("paths", nargs=-1, required=True)
@click.option("--check", is_flag=True, help="Change nothing: print a diff for each file that is not formatted.")
def fmt_cmd(paths: tuple[str, ...], check: bool) -> None:
    """Rewrite policy files (or folders of them) in the canonical layout, keeping every comment."""
    from medpol.dsl.format import format_text

    files = _policy_files(paths)
    if not files:
        raise click.UsageError("no .policy files found")
    changed = errors = 0
    for file in files:
        try:
            # Bytes, so that Windows line endings count as a difference to fix.
            text = file.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            click.echo(f"{file}: cannot read: {err}", err=True)
            errors += 1
            continue
        try:
            formatted = format_text(text, str(file))
        except PolicyError as err:
            click.echo(err.render(), err=True)
            errors += 1
            continue
        if formatted == text:
            continue
        if check:
            click.echo(_diff(file, text, formatted), nl=False)
        else:
            try:
                file.write_bytes(formatted.encode("utf-8"))
            except OSError as err:  # a read-only file or folder, a full disk
                click.echo(f"{file}: cannot write: {err.strerror or err}", err=True)
                errors += 1
                continue
            click.echo(f"reformatted {file}", err=True)
        changed += 1
    if check:
        summary = f"{_plural(changed, 'file')} would be reformatted"
    else:
        summary = f"{_plural(changed, 'file')} reformatted"
    unchanged = len(files) - changed - errors
    summary += f", {unchanged} already formatted"
    if errors:
        summary += f", {_plural(errors, 'error')}"
    click.echo(summary, err=True)
    sys.exit(1 if errors or (check and changed) else 0)
