"""The README's examples run as written, against files in the repository."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, re.S)

# Commands that write into the repository or serve until stopped are shown, not run.
NOT_RUN = ("medpol new", "medpol docs serve", "medpol history import")


def _commands() -> list[str]:
    found = []
    for language, body in BLOCKS:
        if language:
            continue
        for line in body.splitlines():
            if line.startswith("medpol ") and not line.startswith(NOT_RUN):
                found.append(line.split("  #")[0].strip())
    return found


COMMANDS = _commands()


def test_the_readme_shows_commands():
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize("command", COMMANDS)
def test_a_readme_command_runs_as_written(command, tmp_path):
    words = shlex.split(command)
    out = None
    if ">" in words:  # `> decisions.jsonl`: written outside the repository here
        at = words.index(">")
        words, out = words[:at], tmp_path / words[at + 1]
    medpol = Path(sys.executable).with_name("medpol")
    result = subprocess.run(
        [str(medpol), *words[1:]], cwd=ROOT, capture_output=True, text=True, env={**os.environ}, check=False
    )
    assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr
    if out is not None:
        out.write_text(result.stdout)
        assert out.stat().st_size > 0


def test_the_readme_python_runs_as_written(monkeypatch):
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    blocks = [body for language, body in BLOCKS if language == "python"]
    assert len(blocks) >= 2
    for body in blocks:
        exec(compile(body, "README.md", "exec"), namespace)  # noqa: S102 - the README's own examples
    assert namespace["decision"]["lines"]
