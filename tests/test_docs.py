"""The language reference against the code it documents.

An example in site/docs/language.md that says it is taken from a policy (a ```policy block
whose first line is `# from policies/NAME.policy`) must be that policy's text: its lines, in
order, with `...` standing for lines left out. And the reference's list of diagnostic codes
must be every code the compiler can report, and only those.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from medpol.api import check_text
from medpol.cli.main import main as cli

ROOT = Path(__file__).resolve().parent.parent
LANGUAGE = ROOT / "site" / "docs" / "language.md"

FENCE = re.compile(r"^```policy[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
SOURCE = re.compile(r"#\s*from\s+(policies/[\w.-]+\.policy)\s*$")
ELISION = "..."

KEBAB = r"[a-z][a-z0-9]*(?:-[a-z0-9]+)+"
# A diagnostic code is a kebab-case string literal given to one of the calls that make a
# diagnostic: `report(node, "code", ...)` (compiler/check.py, compiler/types.py),
# `problem(span, "code", ...)` (compiler/resolve.py) and `Diagnostic(path, line, column,
# "code", ...)` (dsl/, medpol/api.py). The call's arguments may span lines and hold calls of
# their own; the first kebab-case literal in them is the code.
DIAGNOSTIC_CALL = re.compile(
    r"\b(?:report|problem|Diagnostic)\((?:[^()]|\([^()]*\))*?\"(" + KEBAB + r")\"",
    re.DOTALL,
)
CODE_ROW = re.compile(r"^\|\s*`(" + KEBAB + r")`\s*\|", re.MULTILINE)
# Every kebab-case string literal in compiler/ and dsl/ is a diagnostic code but these, so a
# code that reaches a diagnostic some other way (through a variable) is not missed either.
LITERAL = re.compile(r"[\"'](" + KEBAB + r")[\"']")
# Kebab-case words of the compiler that are not diagnostic codes: names of things it reads,
# and the plan's words for a step that decides a base by the item it serves when the claim
# does not say which, and for a dependent whose base is pending.
NOT_CODES = {"utf-8", "simple-icd-10-cm", "unknown-served", "pending-base"}


def _examples() -> list[tuple[int, str, list[str]]]:
    """(line in language.md, policy path, the example's lines) for every example marked as taken."""
    text = LANGUAGE.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        lines = match.group(1).splitlines()
        if not lines:
            continue
        source = SOURCE.match(lines[0].strip())
        if source is None:
            # A mistyped marker would leave the example unchecked without a word.
            assert not lines[0].strip().lower().startswith("# from"), f"not a policy path: {lines[0]}"
            continue
        found.append((text[: match.start()].count("\n") + 1, source.group(1), lines[1:]))
    return found


EXAMPLES = _examples()


def test_the_reference_has_examples_taken_from_the_encoded_policies():
    assert len(EXAMPLES) >= 20
    assert {path for _, path, _ in EXAMPLES} == {
        "policies/external-infusion-pump.policy",
        "policies/glucose-monitors.policy",
        "policies/wheelchair-seating.policy",
    }


@pytest.mark.parametrize("line,path,example", EXAMPLES, ids=[f"language.md:{line}" for line, _, _ in EXAMPLES])
def test_an_example_taken_from_a_policy_is_its_text(line: int, path: str, example: list[str]):
    policy = ROOT / path
    assert policy.exists(), f"language.md line {line} names {path}, which does not exist"
    policy_lines = [text.strip() for text in policy.read_text(encoding="utf-8").splitlines()]
    wanted = [text.strip() for text in example]
    wanted = [text for text in wanted if text and text != ELISION and not text.startswith("#")]
    assert wanted, f"the example at language.md line {line} has no policy text"
    position = 0
    for text in wanted:
        try:
            position = policy_lines.index(text, position) + 1
        except ValueError:
            earlier = text in policy_lines[:position]
            pytest.fail(
                f"language.md line {line}: `{text}` is not in {path}"
                + (" after the example's previous line" if earlier else "")
            )


def _source_codes() -> set[str]:
    codes: set[str] = set()
    for folder in ("compiler", "dsl", "medpol"):
        for source in sorted((ROOT / folder).rglob("*.py")):
            codes.update(DIAGNOSTIC_CALL.findall(source.read_text(encoding="utf-8")))
    return codes


def _documented_codes() -> set[str]:
    text = LANGUAGE.read_text(encoding="utf-8")
    start = text.index("\n## Checks\n")
    end = text.find("\n## ", start + 1)
    return set(CODE_ROW.findall(text[start : end if end != -1 else len(text)]))


def test_the_source_is_searched_for_codes():
    # A pattern that found nothing would let every check below pass.
    codes = _source_codes()
    assert len(codes) >= 40
    assert {"unsupported-limit", "unexpected-character", "missing-category", "tab-indent"} <= codes


def test_every_code_like_literal_of_the_compiler_is_found_as_a_code():
    literals: set[str] = set()
    for folder in ("compiler", "dsl"):
        for source in sorted((ROOT / folder).rglob("*.py")):
            literals.update(LITERAL.findall(source.read_text(encoding="utf-8")))
    unmatched = sorted(literals - NOT_CODES - _source_codes())
    assert not unmatched, f"kebab-case literals not passed to report/problem/Diagnostic: {unmatched}"


def test_every_diagnostic_code_is_in_the_checks_section():
    missing = sorted(_source_codes() - _documented_codes())
    assert not missing, f"codes the compiler reports but language.md's Checks section does not list: {missing}"


def test_the_checks_section_lists_no_code_the_compiler_does_not_report():
    stale = sorted(_documented_codes() - _source_codes())
    assert not stale, f"codes language.md's Checks section lists but nothing reports: {stale}"


# ---------------------------------------------------------------- the tutorial

TUTORIAL = ROOT / "site" / "docs" / "tutorial.md"
BLOCK = re.compile(r"^```(policy|yaml)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def _tutorial_files() -> tuple[str, dict]:
    """The policy the tutorial builds, from its ```policy blocks, and a tests file of its cases.

    A block at the left margin is a top-level item; an indented block adds rules to the last
    section, or facts to the `facts` block. The `source` line is left out: the tutorial's
    policy text is the reader's, not kept here. Cases whose claim is elided (`claim: ...`)
    are left out too.
    """
    items: list[list[str]] = []
    cases: list[dict] = []
    for kind, body in BLOCK.findall(TUTORIAL.read_text(encoding="utf-8")):
        if kind == "yaml":
            data = yaml.safe_load(body)
            found = data["cases"] if isinstance(data, dict) else data
            cases.extend(case for case in found if isinstance(case.get("claim"), dict))
            continue
        lines = body.splitlines()
        if not lines[0].startswith(" "):
            items.append([line for line in lines if not line.strip().startswith("source ")])
        elif lines[0].strip().startswith("rule "):
            next(item for item in reversed(items) if item[0].startswith("section ")).extend(lines)
        else:
            next(item for item in items if item[0] == "facts").extend(lines)
    policy = "medpol 1\n\n" + "\n\n".join("\n".join(item) for item in items) + "\n"
    tests = {
        "policy": "ziconotide-pump.policy",
        "defaults": {
            "member": {"id": "M-1", "birth_date": "1970-03-02", "line_of_business": "commercial"},
            "diagnoses": [],
        },
        "cases": cases,
    }
    return policy, tests


def test_the_tutorial_policy_passes_the_tutorials_cases(tmp_path: Path):
    policy, tests = _tutorial_files()
    assert "limit ziconotide_table" in policy and "service_date" in policy
    assert len(tests["cases"]) >= 3
    errors = [d for d in check_text(policy, "ziconotide-pump.policy") if d.severity == "error"]
    assert not errors, "\n".join(d.render(policy) for d in errors)
    (tmp_path / "ziconotide-pump.policy").write_text(policy, encoding="utf-8")
    (tmp_path / "ziconotide-pump.tests.yaml").write_text(yaml.safe_dump(tests, sort_keys=False), encoding="utf-8")
    result = CliRunner().invoke(cli, ["test", str(tmp_path / "ziconotide-pump.tests.yaml")])
    assert result.exit_code == 0, result.output
    assert f"{len(tests['cases'])} passed, 0 failed" in result.output


def test_the_contracts_point_to_files_that_exist():
    """Every repository path a contract names (`../policies/...`, `../tests/...`) is there."""
    root = Path(__file__).resolve().parent.parent
    named = []
    for doc in sorted((root / "docs").glob("*.md")):
        for path in re.findall(r"`(\.\./[^`\s]+)`", doc.read_text(encoding="utf-8")):
            named.append(path)
            assert (doc.parent / path).exists(), f"{doc.name} names {path}, which does not exist"
    assert len(named) >= 6
