"""The medpol command line: exit codes, batches that never lose a claim, what-if dates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from medpol.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
POLICY = str(ROOT / "policies" / "external-infusion-pump.policy")
CLAIMS = ROOT / "tests" / "fixtures" / "contract" / "claims.jsonl"
FIRST = json.loads(CLAIMS.read_text().splitlines()[0])


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def decisions(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_check_passes_on_the_bundled_policies():
    result = run("check", str(ROOT / "policies"))
    assert result.exit_code == 0
    assert "0 errors" in result.output


def test_check_reports_errors_with_exit_1(tmp_path):
    bad = tmp_path / "bad.policy"
    bad.write_text(
        Path(POLICY)
        .read_text()
        .replace("cd19_positive\n            ph_negative", "cd19_postive\n            ph_negative")
    )
    result = run("check", str(bad))
    assert result.exit_code == 1
    assert "error[undefined-fact]" in result.output
    assert "did you mean `cd19_positive`?" in result.output


def test_eval_with_a_broken_policy_exits_1_and_decides_nothing(tmp_path):
    bad = tmp_path / "bad.policy"
    bad.write_text(
        'policy x "X"\n  revision 1 dated 2026-01-01 effective 2026-01-01\n'
        'section s "S"\n  rule r\n    cover E0781 when\n'
    )
    result = run("eval", str(bad), str(CLAIMS))
    assert result.exit_code == 1
    assert "no claims were decided" in result.output
    assert not [line for line in result.output.splitlines() if line.startswith("{")]


def test_usage_errors_exit_2(tmp_path):
    assert run("eval", POLICY, str(tmp_path / "missing.jsonl")).exit_code == 2
    assert run("eval", POLICY, str(CLAIMS), "--as-of", "2026-13-01").exit_code == 2
    assert run("check", str(tmp_path / "nothing-here")).exit_code == 2
    assert run("frobnicate").exit_code == 2
    assert run("eval", str(tmp_path), str(CLAIMS)).exit_code == 2  # a folder with no policies
    assert run("compile", str(tmp_path / "missing.policy")).exit_code == 2
    assert run("docs", "build", "--policies", str(tmp_path), "--out", str(tmp_path / "site")).exit_code == 2


def test_batch_keeps_every_claim_in_order_even_malformed_ones(tmp_path):
    lines = CLAIMS.read_text().splitlines()
    batch = [
        lines[0],
        "{not json",
        json.dumps({"id": "no-lines", "member": FIRST["member"], "diagnoses": []}),
        "",
        lines[3],
    ]
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(batch) + "\n")
    result = run("eval", POLICY, str(path))
    assert result.exit_code == 0
    out = decisions(result.stdout)
    assert [d["claim"] for d in out] == [FIRST["id"], None, "no-lines", json.loads(lines[3])["id"]]
    assert out[1]["outcome"] == "error" and "batch.jsonl:2" in out[1]["message"]
    assert out[2]["outcome"] == "error" and out[2]["field"] == "lines"


def test_stdin_and_out_file(tmp_path):
    out = tmp_path / "decisions.jsonl"
    result = run("eval", POLICY, "-", "--out", str(out), input=CLAIMS.read_text())
    assert result.exit_code == 0
    assert len(decisions(out.read_text())) == len(CLAIMS.read_text().splitlines())


def test_as_of_decides_as_if_served_that_day(tmp_path):
    claim = tmp_path / "claim.json"
    claim.write_text(json.dumps(FIRST))
    after = decisions(run("eval", POLICY, str(claim)).stdout)[0]
    before = decisions(run("eval", POLICY, str(claim), "--as-of", "2026-01-24").stdout)[0]
    assert [line["outcome"] for line in after["lines"]] == ["covered"] * 3
    assert [line["outcome"] for line in before["lines"]] == ["denied"] * 3


def test_explain_shows_the_clause_out_of_effect_and_what_would_change(tmp_path):
    claim = tmp_path / "claim.json"
    claim.write_text(json.dumps(FIRST))
    result = run("eval", POLICY, str(claim), "--as-of", "2026-01-20", "--explain")
    assert result.exit_code == 0
    assert "line 1 E0781: denied (not reasonable and necessary)" in result.output
    assert "item 3 (effective 2026-01-25)" in result.output
    assert "not in effect on 2026-01-20" in result.output
    assert "facts that would change the outcome: all_setting" in result.output


def test_explain_of_a_pending_line_names_the_missing_fact(tmp_path):
    claim = dict(FIRST)
    claim["facts"] = {k: v for k, v in FIRST["facts"].items() if k != "cd19_positive"}
    path = tmp_path / "claim.json"
    path.write_text(json.dumps(claim))
    result = run("eval", POLICY, str(path), "--explain")
    assert "pending (needs cd19_positive)" in result.output
    assert "would decide it: cd19_positive" in result.output


def one_line_exit_2(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = result.output.splitlines()
    return line


def test_unwritable_out_is_one_line_and_exit_2(tmp_path):
    missing = str(tmp_path / "missing" / "dir" / "x.jsonl")
    assert "does not exist" in one_line_exit_2(run("eval", POLICY, str(CLAIMS), "--out", missing))
    diff = run("diff", f"{POLICY}@r21", f"{POLICY}@r22", "--out", str(tmp_path / "missing" / "d.md"))
    assert "cannot write" in one_line_exit_2(diff)


def test_empty_binary_and_folder_claims_are_one_line_and_exit_2(tmp_path):
    empty = tmp_path / "claim.json"
    empty.write_bytes(b"")
    assert "is empty" in one_line_exit_2(run("eval", POLICY, str(empty)))
    binary = tmp_path / "claims.jsonl"
    binary.write_bytes(b"\x00\x01\x02PK\x03\x04" * 100)
    assert "binary data" in one_line_exit_2(run("eval", POLICY, str(binary)))
    assert "binary data" in one_line_exit_2(run("diff", f"{POLICY}@r21", f"{POLICY}@r22", "--claims", str(binary)))
    assert "is a folder" in one_line_exit_2(run("eval", POLICY, str(tmp_path)))


@pytest.mark.parametrize("data", [b"[]", b" [\n  ]\n", "\ufeff[]".encode(), "\ufeff\n".encode()])
def test_a_json_file_with_no_claims_in_it_is_one_line_and_exit_2(tmp_path, data):
    path = tmp_path / "claims.json"
    path.write_bytes(data)
    for args in (("eval", POLICY, str(path)), ("diff", f"{POLICY}@r21", f"{POLICY}@r22", "--claims", str(path))):
        line = one_line_exit_2(run(*args))
        assert line.endswith(": there are no claims to decide"), line


def test_a_date_that_does_not_exist_says_so():
    result = run("eval", POLICY, str(CLAIMS), "--as-of", "2026-02-30")
    assert result.exit_code == 2
    assert "`2026-02-30` is not a date: February 2026 has 28 days" in result.output


def test_a_misspelt_fact_is_warned_on_stderr_and_strict_makes_it_an_error(tmp_path):
    claim = json.loads(CLAIMS.read_text().splitlines()[0])
    claim["facts"]["cd19_positiv"] = True
    path = tmp_path / "claim.json"
    path.write_text(json.dumps(claim))
    result = run("eval", POLICY, str(path))
    assert result.exit_code == 0
    (decision,) = decisions(result.stdout)
    assert decision["warnings"] == [
        "`facts.cd19_positiv` is not a fact of this policy and was ignored (did you mean `cd19_positive`?)"
    ]
    assert "medpol eval: 1 claim, 3 lines" in result.stderr and "1 warning" in result.stderr
    assert "warning: `facts.cd19_positiv` is not a fact" in result.stderr
    strict = run("eval", POLICY, str(path), "--strict")
    (decision,) = decisions(strict.stdout)
    assert (decision["outcome"], decision["field"]) == ("error", "facts.cd19_positiv")
    assert "1 error" in strict.stderr


def test_why_not_lists_the_routes_a_pending_line_could_take():
    claim = ROOT / "tests" / "fixtures" / "contract" / "blinatumomab-pending-claim.json"
    for jobs in ("1", "2"):
        result = run("eval", POLICY, str(claim), "--why-not", "--jobs", jobs)
        assert result.exit_code == 0, result.output
        (decision,) = decisions(result.stdout)
        pump = decision["lines"][0]
        assert pump["outcome"] == "pending"
        routes = [r["route"] for r in pump["why_not"]]
        assert len(routes) == 2 and "Criteria set 1" in routes[0] and "Criteria set 2" in routes[1]
        assert [g["route"] for g in pump["missing_by_route"]] == routes
        assert set(pump["why_not"][0]["facts"]) == set(pump["missing_by_route"][0]["missing"])
    plain = decisions(run("eval", POLICY, str(claim)).stdout)[0]
    assert "why_not" not in plain["lines"][0]
    explained = run("eval", POLICY, str(claim), "--why-not", "--explain").output
    assert "would be covered with:" in explained


def test_a_few_lines_that_are_not_utf8_are_their_claims_errors_and_other_text_is_refused(tmp_path):
    lines = CLAIMS.read_bytes().splitlines()
    some = tmp_path / "some.jsonl"
    some.write_bytes(b"\n".join(lines[:2] + [lines[2].replace(b"commercial", b"commer\xe9ial", 1)] + lines[3:]) + b"\n")
    result = run("eval", POLICY, str(some), "-q")
    assert result.exit_code == 0
    out = decisions(result.output)
    assert len(out) == len(lines)  # every claim, in order
    assert out[2]["outcome"] == "error" and "some.jsonl:3:" in out[2]["message"]
    assert all("outcome" not in d for d in out[:2] + out[3:])
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"id": "café"}\n'.encode("latin-1") * 50)
    assert "not UTF-8 text" in one_line_exit_2(run("eval", POLICY, str(latin)))


def test_a_json_file_holding_an_array_decides_each_claim_in_it(tmp_path):
    claims = [json.loads(line) for line in CLAIMS.read_text().splitlines()]
    array = tmp_path / "claims.json"
    array.write_text(json.dumps(claims + [1], indent=2))
    out = decisions(run("eval", POLICY, str(array), "-q").output)
    assert [d["claim"] for d in out] == [c["id"] for c in claims] + [None]
    assert out[-1]["outcome"] == "error" and "expected an object" in out[-1]["message"]
    assert out[:-1] == decisions(run("eval", POLICY, str(CLAIMS), "-q").output)


def test_an_option_that_would_be_ignored_is_refused():
    explain = run("eval", POLICY, str(CLAIMS), "--explain", "--output-format", "csv")
    assert explain.exit_code == 2 and "--output-format is for decisions" in explain.output
    code = run("compile", POLICY, "--code", "E0781")
    assert code.exit_code == 2 and "--code chooses what --show-python prints" in code.output


@pytest.mark.parametrize("explain", [False, True])
def test_a_pretty_printed_claim_or_array_on_stdin_is_one_document(explain):
    claims = [json.loads(line) for line in CLAIMS.read_text().splitlines()]
    flags = ("--explain",) if explain else ("-q",)
    as_lines = run("eval", POLICY, "-", *flags, input=CLAIMS.read_text()).output
    one = run("eval", POLICY, "-", *flags, input=json.dumps(claims[0], indent=2)).output
    array = run("eval", POLICY, "-", *flags, input=json.dumps(claims, indent=2)).output
    assert array == as_lines
    assert "not valid JSON" not in one and one and as_lines.startswith(one.split("\n\n")[0] if explain else one)
