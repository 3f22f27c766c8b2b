"""The user's cache folder: the grammar's parse tables are kept there and rebuilt when they
cannot be used, and medpol works without a writable cache at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policies" / "external-infusion-pump.policy"

# A fresh process each time: the parser is built once per process.
COMPILE = f"""
from medpol.api import load_policy
policy = load_policy({str(POLICY)!r})
print(policy.id, len(policy.model.rules))
"""


def _compile(cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    return subprocess.run([sys.executable, "-c", COMPILE], env=env, capture_output=True, text=True, timeout=120)


def _tables(cache: Path) -> list[Path]:
    return sorted((cache / "medpol").glob("policy-grammar-*.cache"))


def test_the_parse_tables_are_kept_and_used(tmp_path):
    first = _compile(tmp_path)
    assert first.returncode == 0, first.stderr
    (tables,) = _tables(tmp_path)
    written = tables.stat().st_mtime_ns
    again = _compile(tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    assert tables.stat().st_mtime_ns == written  # read, not rebuilt


def test_damaged_tables_are_rebuilt(tmp_path):
    assert _compile(tmp_path).returncode == 0
    (tables,) = _tables(tmp_path)
    good = tables.read_bytes()
    tables.write_bytes(good[: len(good) // 2])  # a write cut short
    damaged = _compile(tmp_path)
    assert damaged.returncode == 0, damaged.stderr
    assert damaged.stderr == ""
    assert "external-infusion-pump" in damaged.stdout
    rebuilt = tables.stat()
    assert rebuilt.st_size > len(good) // 2  # written whole again
    assert _compile(tmp_path).returncode == 0
    assert tables.stat().st_mtime_ns == rebuilt.st_mtime_ns  # and read from then on


def test_no_writable_cache_folder(tmp_path):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would be")
    result = _compile(blocked)
    assert result.returncode == 0, result.stderr
    assert "external-infusion-pump" in result.stdout
    assert result.stderr == ""
