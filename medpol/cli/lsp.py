"""`medpol lsp`: the language server for editors, which needs the `lsp` extra (pygls)."""

from __future__ import annotations

import importlib.util
import sys

import click


@click.command("lsp")
@click.option(
    "--stdio", is_flag=True, help="Talk over stdin and stdout (the only transport; accepted for editors that pass it)."
)
def lsp_cmd(stdio: bool) -> None:
    """Serve an editor over the Language Server Protocol: diagnostics as you type, hover,
    definitions, references, completion, formatting and the outline of policy files."""
    if importlib.util.find_spec("pygls") is None or importlib.util.find_spec("lsprotocol") is None:
        click.echo("error: `medpol lsp` needs the lsp extra: pip install 'medpol[lsp]'", err=True)
        sys.exit(2)
    from medpol.authoring.lsp import serve

    serve()
