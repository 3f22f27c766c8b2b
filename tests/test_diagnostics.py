"""Golden tests for diagnostics: one small policy per mistake, and the exact text `check` prints.

Each `tests/golden/diagnostics/NAME.policy` holds one mistake; `NAME.expected` holds every
diagnostic `check_text` reports for it, rendered with the source line and caret. Regenerate
the expected files with

    python -m pytest tests/test_diagnostics.py --update-golden

then read every changed file: a golden file is only as good as the review it had.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medpol.api import check_text
from medpol.dsl.diagnostics import Diagnostic

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "diagnostics"
CASES = sorted(GOLDEN.glob("*.policy"))

# Cases whose .expected file is written by hand, because what `check_text` prints today is
# wrong; `--update-golden` leaves them alone so the bug is not baked in. Remove a case from
# here once the library prints what its .expected file says.
# (`unexpected_indent` was one, until the diagnostic stopped pointing at the line before the
# over-indented one.)
HAND_WRITTEN: dict[str, str] = {}


def _render(text: str, path: str) -> str:
    diagnostics = check_text(text, path)
    assert isinstance(diagnostics, list)
    assert all(isinstance(d, Diagnostic) for d in diagnostics)
    assert diagnostics == sorted(diagnostics)
    return "\n".join(d.render(text) for d in diagnostics) + "\n"


@pytest.mark.parametrize("policy", CASES, ids=[p.stem for p in CASES])
def test_golden_diagnostics(policy: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    # A policy's `source` resolves relative to the path it is checked under, which is the
    # repository-relative path printed in the expected output.
    monkeypatch.chdir(REPO)
    path = policy.relative_to(REPO).as_posix()
    text = policy.read_text(encoding="utf-8")
    actual = _render(text, path)
    expected_file = policy.with_suffix(".expected")
    if request.config.getoption("--update-golden") and policy.stem not in HAND_WRITTEN:
        expected_file.write_text(actual, encoding="utf-8")
        return
    assert expected_file.exists(), f"no {expected_file.name}: run with --update-golden and review it"
    assert actual == expected_file.read_text(encoding="utf-8")


def test_golden_cases_are_complete() -> None:
    assert len(CASES) >= 18
    for expected in GOLDEN.glob("*.expected"):
        assert expected.with_suffix(".policy").exists(), f"{expected.name} has no .policy file"
    for policy in CASES:
        expected = policy.with_suffix(".expected")
        if expected.exists():
            # Every case is a mistake, so it reports at least one diagnostic.
            assert "error[" in expected.read_text(encoding="utf-8") or "warning[" in expected.read_text(
                encoding="utf-8"
            ), f"{expected.name} reports nothing"
    for name in HAND_WRITTEN:
        assert (GOLDEN / f"{name}.policy").exists(), f"HAND_WRITTEN names a missing case `{name}`"
