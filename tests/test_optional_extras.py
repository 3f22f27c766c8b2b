"""Without the serve and fhir extras, medpol still imports and decides; the commands that
need an extra say which, in one line, and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICY = "policies/external-infusion-pump.policy"
CLAIMS = "tests/fixtures/contract/claims.jsonl"
EXTRAS = ("fhir", "starlette", "uvicorn", "httpx", "httptools", "uvloop", "pydantic")

HIDE = f"""
import importlib.abc, importlib.util, sys
HIDDEN = {EXTRAS!r}
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in HIDDEN:
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Hide())
_find = importlib.util.find_spec
importlib.util.find_spec = lambda n, *a: None if n.split('.')[0] in HIDDEN else _find(n, *a)
from medpol.cli.main import main
main(sys.argv[1:])
"""


def medpol(*args, stdin: bytes | None = None, hidden: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", HIDE, *args] if hidden else [sys.executable, "-m", "medpol.cli", *args]
    return subprocess.run(command, capture_output=True, cwd=ROOT, input=stdin)


def test_eval_decides_without_the_extras():
    without = medpol("eval", "-q", POLICY, CLAIMS)
    assert without.returncode == 0, without.stderr
    assert without.stdout == medpol("eval", "-q", POLICY, CLAIMS, hidden=False).stdout
    assert b"Traceback" not in without.stderr


def test_commands_that_need_an_extra_name_it():
    for args, extra in [
        (("serve", "policies/"), "serve"),
        (("fhir", "questionnaire", POLICY), "fhir"),
        (("eval", "-q", POLICY, CLAIMS, "--output-format", "fhir"), "fhir"),
    ]:
        done = medpol(*args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and f"pip install 'medpol[{extra}]'" in lines[0], lines


def test_a_fhir_claim_without_the_extra_is_an_error_decision():
    claim = {"resourceType": "Claim", "id": "c-1"}
    done = medpol("eval", "-q", POLICY, "-", stdin=json.dumps(claim).encode())
    assert done.returncode == 0, done.stderr
    decision = json.loads(done.stdout)
    assert decision["outcome"] == "error" and "medpol[fhir]" in decision["message"]
