"""Policy tests files: `medpol test` runs them with coverage, `medpol new` scaffolds a policy with passing tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from medpol.api import check_file
from medpol.authoring.policytests.load import load_tests
from medpol.authoring.policytests.run import Runner
from medpol.cli import test as cli_test

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
BUNDLED = POLICIES / "external-infusion-pump.tests.yaml"
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")

# Imported through the module: a name starting with `test` would be collected by pytest.
cli = click.Group("medpol", commands=[cli_test.test_cmd, cli_test.new_cmd])


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def last_line(output: str) -> str:
    return output.rstrip("\n").splitlines()[-1]


def assert_no_traceback(result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


# ---------------------------------------------------------------- the bundled tests


@pytest.fixture(scope="module")
def bundled_run():
    return run("test", str(BUNDLED), "--coverage")


def test_the_bundled_tests_pass(bundled_run):
    assert bundled_run.exit_code == 0, bundled_run.output[-3000:]
    summary = SUMMARY.match(last_line(bundled_run.output))
    assert summary, last_line(bundled_run.output)
    passed = int(summary.group(1))
    assert passed == len(load_tests(BUNDLED).cases) and summary.group(2) == "0"
    assert f"external-infusion-pump.tests.yaml: {passed} passed, 0 failed" in bundled_run.output
    assert "FAILED" not in bundled_run.output


def test_the_bundled_tests_cover_the_policy(bundled_run):
    out = bundled_run.output
    assert re.search(r"rules: (\d+) of \1 evaluated at least once\n", out), out[-3000:]
    figure = re.search(r"criteria: (\d+) of (\d+) seen both true and false \((\d+\.\d)%\)", out)
    assert figure, out[-3000:]
    both, total, percent = int(figure.group(1)), int(figure.group(2)), float(figure.group(3))
    assert percent == round(100 * both / total, 1)
    assert percent >= 95
    assert re.search(r"HCPCS codes: (\d+) of \1 named by rules appear on a test line\n", out)
    assert re.search(r"ICD-10-CM entries: (\d+) of \1 matched by a test diagnosis\n", out)


def test_the_bundled_tests_expect_what_the_contract_examples_expect():
    fixtures = ROOT / "tests" / "fixtures" / "contract"
    claims = [json.loads(line) for line in (fixtures / "claims.jsonl").read_text().splitlines() if line.strip()]
    expected = [json.loads(line) for line in (fixtures / "expected.jsonl").read_text().splitlines() if line.strip()]
    cases = load_tests(BUNDLED).cases
    for claim, decision in zip(claims, expected, strict=True):
        source = f"../tests/fixtures/contract/claims.jsonl#{claim['id']}"
        case = next(c for c in cases if c.source == source and c.known_at is None and c.as_of is None)
        assert case.claim == claim
        got = [
            {"seq": e.seq, "outcome": e.outcome, "category": e.category, "refer_to": e.refer_to, "missing": e.missing}
            for e in case.expect
        ]
        want = [
            {
                "seq": ln["seq"],
                "outcome": ln["outcome"],
                "category": ln.get("category"),
                "refer_to": ln.get("refer_to"),
                "missing": tuple(ln["missing"]) if "missing" in ln else None,
            }
            for ln in decision["lines"]
        ]
        assert got == want, claim["id"]


def _copy_of_bundled(tmp_path: Path) -> Path:
    """The bundled tests, with their policy and claim files named by absolute paths."""
    text = BUNDLED.read_text()
    text = text.replace(
        "policy: external-infusion-pump.policy", f"policy: {POLICIES / 'external-infusion-pump.policy'}"
    )
    text = text.replace("../tests/fixtures/", f"{ROOT / 'tests' / 'fixtures'}/")
    copy = tmp_path / "copy.tests.yaml"
    copy.write_text(text)
    return copy


def test_a_failing_case_shows_its_first_difference_and_the_tree(tmp_path):
    copy = _copy_of_bundled(tmp_path)
    text = copy.read_text()
    case = """  - name: deferoxamine-anemia-D50.9-denied
    claim:
      diagnoses: [D50.9]
      lines: [E0781, J0895, A4221]
    expect:
      - {seq: 1, outcome: denied, category: not_reasonable_and_necessary, rule: misc.criteria_not_met}"""
    assert case in text
    copy.write_text(
        text.replace(case, case.replace("outcome: denied, category: not_reasonable_and_necessary", "outcome: covered"))
    )
    cases = load_tests(copy).cases
    total = len(cases)
    number = next(c.index for c in cases if c.name == "deferoxamine-anemia-D50.9-denied")
    expectation = text[: text.index(case)].count("\n") + 6  # the line of its `- {seq: 1, ...}`

    result = run("test", str(copy))
    assert result.exit_code == 1
    assert_no_traceback(result)
    out = result.output
    # pointed at the expectation that failed, in the case named by number and name
    assert (
        f'FAILED {copy}:{expectation}:9: case #{number} "deferoxamine-anemia-D50.9-denied", line 1: '
        "expected covered, got denied (not reasonable and necessary)\n" in out
    )
    # the explanation tree of the decision
    assert "claim deferoxamine-anemia-D50.9-denied under external-infusion-pump revision 22" in out
    assert "rules tried, in precedence order:" in out
    assert "✗ commonly_used.deferoxamine (cover)" in out
    assert "✗ diagnosis in chronic_iron_overload   [diagnoses = ['D509']]" in out
    assert f"copy.tests.yaml: {total - 1} passed, 1 failed" in out
    assert last_line(out) == f"{total - 1} passed, 1 failed"


def test_each_kind_of_difference_is_named(tmp_path):
    tests = tmp_path / "kinds.tests.yaml"
    tests.write_text(
        f"""policy: {POLICIES / "external-infusion-pump.policy"}
defaults:
  member: {{id: M-1, birth_date: 1970-03-02, line_of_business: commercial}}
  diagnoses: [E83.111]
  facts: {{face_to_face_date: 2025-12-15, written_order_date: 2026-01-05, documentation_received_before_delivery: true}}
  line: {{service_date: 2026-02-10}}
cases:
  - name: wrong category
    claim: {{lines: [E0781, J0895, A4225]}}
    expect: [{{seq: 3, outcome: denied, category: not_covered}}]
  - name: wrong missing
    claim: {{lines: [E0779, J2270], diagnoses: []}}
    expect: [{{seq: 1, outcome: pending, missing: [cd19_positive]}}]
  - name: wrong rule
    claim: {{lines: [E0781, J0895]}}
    expect: [{{seq: 1, outcome: covered, rule: J.blinatumomab}}]
  - name: no such line
    claim: {{lines: [E0781, J0895]}}
    expect: [{{seq: 7, outcome: covered}}]
  - name: not a claim error
    claim: {{lines: [E0781, J0895]}}
    expect: {{outcome: error}}
  - name: a claim error
    claim: {{lines: []}}
    expect: [{{seq: 1, outcome: covered}}]
  - name: expected claim error
    claim: {{lines: []}}
    expect: {{outcome: error, message: lines}}
"""
    )
    result = run("test", str(tests))
    assert result.exit_code == 1
    out = result.output
    # Each points at the expectation it breaks: the entry of the `expect` list, or the `expect`
    # of a claim error; a claim error where lines were expected points at the case.
    assert (
        f'FAILED {tests}:10:14: case #1 "wrong category", line 3: '
        "expected denied (not covered), got denied (incorrect coding)" in out
    )
    assert (
        f'FAILED {tests}:13:14: case #2 "wrong missing", line 1: expected pending (needs cd19_positive), '
        "got pending (needs intractable_cancer_pain)" in out
    )
    assert (
        f'FAILED {tests}:16:14: case #3 "wrong rule", line 1: '
        "expected rule J.blinatumomab among the reasons, got commonly_used.deferoxamine" in out
    )
    assert f'FAILED {tests}:19:14: case #4 "no such line", line 7: expected covered, but the claim has no line 7' in out
    assert (
        f'FAILED {tests}:22:13: case #5 "not a claim error": '
        "expected a claim error, got line decisions (line 1 covered, line 2 covered)" in out
    )
    assert (
        f'FAILED {tests}:23:5: case #6 "a claim error": '
        "expected line decisions, got a claim error: lines: a claim needs at least one line" in out
    )
    assert last_line(out) == "1 passed, 6 failed"


# ---------------------------------------------------------------- coverage, exactly

TINY_POLICY = """medpol 1

policy tiny "Tiny"
  revision 1 dated 2026-01-01 effective 2026-01-01

facts
  a: bool
  b: bool
  c: bool

codes pumps "Pumps"
  E0781 "AMBULATORY PUMP"
  E0791 "STATIONARY PUMP"

diagnoses listed "Listed diagnoses" = C91.0, D80.2-D80.7

section s "S"
  rule s.refer
    "Refer."
    refer E0791 to "Another policy" when a

  rule s.cover
    "Cover."
    cover pumps when
      diagnosis in listed
      any of
        item 1 first
          "First."
          a
        item 2 second
          "Second."
          b
          c

  rule s.otherwise
    "Otherwise."
    otherwise deny as not reasonable and necessary
"""

TINY_TESTS = """policy: tiny.policy
defaults:
  member: {id: M-1, birth_date: 1970-03-02, line_of_business: commercial}
  line: {service_date: 2026-02-10}
cases:
  - name: item 1 holds
    claim: {diagnoses: [C91.00], lines: [E0781], facts: {a: true}}
    expect: [{seq: 1, outcome: covered, rule: [s.cover, s.cover.first]}]
  - name: item 2 fails on c
    claim: {diagnoses: [C91.00], lines: [E0781], facts: {a: false, b: true, c: false}}
    expect: [{seq: 1, outcome: denied, category: not_reasonable_and_necessary, rule: s.otherwise}]
  - name: a diagnosis inside a range
    claim: {diagnoses: [D80.5], lines: [E0781], facts: {a: true}}
    expect: [{seq: 1, outcome: covered}]
"""


@pytest.fixture
def tiny(tmp_path):
    (tmp_path / "tiny.policy").write_text(TINY_POLICY)
    tests = tmp_path / "tiny.tests.yaml"
    tests.write_text(TINY_TESTS)
    return tests


def test_coverage_counts_are_exact(tiny):
    runner = Runner()
    result = runner.run(load_tests(tiny))
    assert (result.passed, result.failed) == (3, 0)
    (cov,) = runner.coverage.values()
    assert cov.cases == 3
    # s.refer names only E0791, which no case bills; s.otherwise has no condition of its own.
    assert cov.rules_never_evaluated == ["s.refer"]
    # s.cover: the whole condition, the diagnosis, the any-of, item 1 (one with its `a`),
    # item 2 and its `b` and `c`; s.refer: its whole condition `a`. Eight criteria.
    assert len(cov.criteria) == 8
    where = {(c.rule, c.where) for c in cov.criteria.values()}
    assert where == {
        ("s.refer", "root"),
        ("s.cover", "root"),
        ("s.cover", "0.0"),
        ("s.cover", "0.1"),
        ("s.cover", "0.1.0"),
        ("s.cover", "0.1.1"),
        ("s.cover", "0.1.1.0"),
        ("s.cover", "0.1.1.1"),
    }
    assert {(c.rule, c.where) for c in cov.both} == {("s.cover", "root"), ("s.cover", "0.1"), ("s.cover", "0.1.0")}
    assert {(c.rule, c.where) for c in cov.only_true} == {("s.cover", "0.0"), ("s.cover", "0.1.1.0")}
    assert {(c.rule, c.where) for c in cov.only_false} == {("s.cover", "0.1.1"), ("s.cover", "0.1.1.1")}
    assert {(c.rule, c.where) for c in cov.never} == {("s.refer", "root")}
    assert cov.percent == 37.5
    item2 = cov.criteria[("s.cover", (0, 1, 1))]
    assert item2.clause == "s.cover.second" and item2.text.startswith('item 2 "Second."')
    assert cov.codes_never_seen == ["E0791"]
    assert cov.dx_never_seen == []


def test_coverage_report_in_the_cli(tiny):
    result = run("test", str(tiny), "--coverage")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "rules: 2 of 3 evaluated at least once; never evaluated: s.refer" in out
    assert "criteria: 3 of 8 seen both true and false (37.5%); 2 seen only true, 2 only false, 1 never reached" in out
    assert "never reached (neither true nor false): 1\n    s.refer [root] whole condition: a" in out
    assert "    s.cover [0.1.1.1] c" in out
    assert "    s.cover [0.0] diagnosis in listed" in out
    assert "HCPCS codes: 1 of 2 named by rules appear on a test line; never: E0791" in out
    assert "ICD-10-CM entries: 2 of 2 matched by a test diagnosis" in out
    assert last_line(out) == "3 passed, 0 failed"


def test_min_coverage_fails_below_the_bar(tiny):
    below = run("test", str(tiny), "--min-coverage", "40")
    assert below.exit_code == 1
    assert "coverage of tiny is 37.5%, below --min-coverage 40" in below.output
    assert last_line(below.output) == "3 passed, 0 failed"
    at = run("test", str(tiny), "--min-coverage", "37.5")
    assert at.exit_code == 0, at.output
    assert "tiny: criteria: 3 of 8 seen both true and false (37.5%)" in at.output
    assert run("test", str(tiny), "--min-coverage", "101").exit_code == 2


def test_a_folder_is_searched_for_tests_files(tiny, tmp_path):
    nested = tmp_path / "more" / "deeper"
    nested.mkdir(parents=True)
    (nested / "tiny-again.tests.yaml").write_text(
        TINY_TESTS.replace("policy: tiny.policy", "policy: ../../tiny.policy")
    )
    (tmp_path / "notes.yaml").write_text("not: a tests file\n")
    result = run("test", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "tiny-again.tests.yaml: 3 passed, 0 failed" in result.output
    assert "tiny.tests.yaml: 3 passed, 0 failed" in result.output
    assert last_line(result.output) == "6 passed, 0 failed"


# ---------------------------------------------------------------- medpol new


def test_new_scaffolds_a_valid_policy_whose_tests_pass(tmp_path):
    result = run("new", "demo-policy", "--dir", str(tmp_path / "policies"))
    assert result.exit_code == 0, result.output
    policy = tmp_path / "policies" / "demo-policy.policy"
    tests = tmp_path / "policies" / "demo-policy.tests.yaml"
    assert policy.is_file() and tests.is_file()
    text = policy.read_text()
    assert 'policy demo-policy "Demo Policy"' in text
    assert "source" not in [line.split()[0] for line in text.splitlines() if line.strip()]
    diagnostics, _ = check_file(str(policy))
    assert [d for d in diagnostics if d.severity == "error"] == []
    ran = run("test", str(tests), "--coverage")
    assert ran.exit_code == 0, ran.output
    assert last_line(ran.output) == "2 passed, 0 failed"
    assert "criteria: 1 of 1 seen both true and false (100.0%)" in ran.output


def test_new_writes_into_policies_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run("new", "demo-policy").exit_code == 0
    assert (tmp_path / "policies" / "demo-policy.policy").is_file()


def test_new_never_overwrites(tmp_path):
    assert run("new", "demo-policy", "--dir", str(tmp_path)).exit_code == 0
    policy = tmp_path / "demo-policy.policy"
    policy.write_text("# edited\n")
    again = run("new", "demo-policy", "--dir", str(tmp_path))
    assert again.exit_code == 2
    assert "already exists" in again.output
    assert policy.read_text() == "# edited\n"
    (tmp_path / "other.tests.yaml").write_text("kept\n")
    assert run("new", "other", "--dir", str(tmp_path)).exit_code == 2
    assert not (tmp_path / "other.policy").exists()


@pytest.mark.parametrize("name", ["Demo", "demo_policy", "demo--policy", "-demo", "demo-", "9demo", "demo policy"])
def test_new_needs_a_lowercase_dashed_name(tmp_path, name):
    result = run("new", "--dir", str(tmp_path), "--", name)
    assert result.exit_code == 2
    assert "is not a policy name" in result.output
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- malformed tests files


def _write(tmp_path: Path, text: str, name: str = "bad.tests.yaml") -> Path:
    (tmp_path / "tiny.policy").write_text(TINY_POLICY)
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("policy: tiny.policy\ncases: [\n", "bad.tests.yaml:3:1: not valid YAML"),
        ("- just\n- a list\n", "expected a mapping with `policy` and `cases`, got a list"),
        ("policy: tiny.policy\n", "the required key `cases` is missing"),
        ("cases: []\n", "the required key `policy` is missing"),
        ("policy: tiny.policy\ncases: []\n", "`cases` must be a non-empty list of cases"),
        ("policy: missing.policy\ncases: [{name: x}]\n", "the policy `missing.policy` does not exist"),
        ("policy: tiny.policy\ncase: []\n", "unknown key `case`"),
        ("policy: tiny.policy\ndefaults: [1]\ncases: [{name: x}]\n", "`defaults` must be a mapping"),
    ],
)
def test_a_malformed_file_is_a_usage_error_naming_the_file(tmp_path, text, message):
    path = _write(tmp_path, text)
    result = run("test", str(path))
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)
    assert message in result.output
    assert str(path) in result.output


@pytest.mark.parametrize(
    ("case", "pointed", "message"),
    [
        # `pointed`: the text the problem is pointed at (a missing key: the case's mapping)
        ("{claim: {lines: [E0781]}, expect: [{seq: 1, outcome: covered}]}", "{claim", "case #2: `name` is missing"),
        ("{name: no expect, claim: {lines: [E0781]}}", "{name", 'case #2 "no expect": `expect` is missing'),
        (
            "{name: bad outcome, claim: {lines: [E0781]}, expect: [{seq: 1, outcome: coverd}]}",
            "coverd",
            'case #2 "bad outcome": expect[0].outcome: `coverd` is not one of covered, denied,',
        ),
        (
            "{name: misplaced, claim: {lines: [E0781]}, expect: [{seq: 1, outcome: covered, category: not_covered}]}",
            "category:",
            "expect[0]: `category` goes with outcome denied, not covered",
        ),
        (
            "{name: no seq, claim: {lines: [E0781]}, expect: [{outcome: covered}]}",
            "{outcome",
            "expect[0].seq: expected the line's seq (an integer), got nothing",
        ),
        (
            "{name: both claims, claim: {lines: [E0781]}, claim_file: x.jsonl, expect: [{seq: 1, outcome: covered}]}",
            "claim_file:",
            "give exactly one of `claim` (inline) and `claim_file`",
        ),
        (
            "{name: missing file, claim_file: nowhere.jsonl#x, expect: [{seq: 1, outcome: covered}]}",
            "nowhere.jsonl#x",
            "claim_file `nowhere.jsonl`: cannot read it",
        ),
        (
            "{name: bad date, claim: {lines: [E0781]}, as_of: 2026-02-30, expect: [{seq: 1, outcome: covered}]}",
            "2026-02-30",
            "`as_of`: `2026-02-30` is not a date",
        ),
        (
            "{name: item 1 holds, claim: {lines: [E0781]}, expect: [{seq: 1, outcome: covered}]}",
            "item 1 holds",
            "already used by case #1",
        ),
        ("just a string", "just", "case #2: expected a mapping with name, claim and expect"),
    ],
)
def test_a_malformed_case_fails_alone_naming_file_and_case(tmp_path, case, pointed, message):
    first = TINY_TESTS.split("  - name: item 2")[0]
    path = _write(tmp_path, first + f"  - {case}\n")
    result = run("test", str(path))
    assert result.exit_code == 1, result.output
    assert_no_traceback(result)
    assert message in result.output, result.output
    line = first.count("\n") + 1
    column = len("  - ") + case.index(pointed) + 1
    assert f"FAILED {path}:{line}:{column}: case #2" in result.output, result.output
    assert last_line(result.output) == "1 passed, 1 failed"


def test_claim_files_json_and_jsonl(tmp_path):
    claim = (
        '{"id": "C-1", "member": {"id": "M", "birth_date": "1970-03-02", "line_of_business": "commercial"}, '
        '"diagnoses": ["C91.00"], "lines": [{"seq": 1, "hcpcs": "E0781", "service_date": "2026-02-10"}], '
        '"facts": {"a": true}}'
    )
    (tmp_path / "one.json").write_text(claim)
    (tmp_path / "many.jsonl").write_text(claim + "\n" + claim.replace('"C-1"', '"C-2"').replace("true", "false") + "\n")
    path = _write(
        tmp_path,
        """policy: tiny.policy
cases:
  - {name: json, claim_file: one.json, expect: [{seq: 1, outcome: covered}]}
  - {name: jsonl, claim_file: 'many.jsonl#C-2', expect: [{seq: 1, outcome: pending, missing: [b, c]}]}
  - {name: jsonl without id, claim_file: many.jsonl, expect: [{seq: 1, outcome: covered}]}
  - {name: unknown id, claim_file: 'many.jsonl#C-9', expect: [{seq: 1, outcome: covered}]}
""",
    )
    result = run("test", str(path))
    out = result.output
    assert "name the claim, e.g. `many.jsonl#claim-id` (2 claims)" in out
    assert "claim_file `many.jsonl#C-9`: no claim with id `C-9`" in out
    assert last_line(out) == "2 passed, 2 failed"


def test_a_broken_policy_fails_its_cases_and_shows_the_problems_once(tmp_path):
    path = _write(tmp_path, TINY_TESTS)
    (tmp_path / "tiny.policy").write_text(TINY_POLICY.replace("      diagnosis in listed", "      diagnosis in listd"))
    result = run("test", str(path))
    assert result.exit_code == 1
    assert_no_traceback(result)
    assert result.output.count("error[undefined-set]") == 1
    assert f"{tmp_path / 'tiny.policy'}: 1 error; its cases fail" in result.output
    assert (
        f'FAILED {path}:6:5: case #1 "item 1 holds": the policy {tmp_path / "tiny.policy"} has 1 error (shown above)'
        in result.output
    )
    assert last_line(result.output) == "0 passed, 3 failed"


def test_usage_errors_exit_2(tmp_path):
    assert run("test", str(tmp_path / "nothing-here")).exit_code == 2
    assert run("test", str(tmp_path)).exit_code == 2  # a folder without tests files
    assert run("test").exit_code == 2
