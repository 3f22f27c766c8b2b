"""Policy tests: run the YAML cases kept beside a policy, and measure which of its criteria they exercise.

A tests file (`NAME.tests.yaml`, read with PyYAML's safe loader):

    policy: external-infusion-pump.policy   # the policy, relative to this file
    defaults:                               # merged into every inline claim; mappings merge deeply
      member: {id: M-1, birth_date: "1970-03-02", line_of_business: commercial}
      diagnoses: []
      facts: {face_to_face_date: "2025-12-15"}
      line: {service_date: "2026-02-10"}    # merged into every line of an inline claim
    x-fact-sets:                            # keys starting with `x-` are ignored: a place for YAML anchors
      set1: &set1 {home_parenteral_necessary: true}
    cases:
      - name: deferoxamine for chronic iron overload is covered    # unique in the file
        claim:                              # an inline claim (docs/claims-contract.md, section 1), or
          line: {service_date: 2026-03-10}  # this claim's line defaults, over those of `defaults`
          diagnoses: [E83.111]
          lines: [E0781, {hcpcs: J0895, units: 8}]   # a bare code is {hcpcs: CODE}; seq defaults to the position
          facts: {<<: *set1, infusion_hours: 24}     # null leaves a default fact unknown
        claim_file: ../tests/fixtures/contract/claims.jsonl#ex-medicare-member   # .json, or .jsonl#claim-id
        as_of: 2026-01-24                   # optional: decide every line as if served that day
        known_at: 2025-12-12                # optional: decide under the revision published that day
        expect:                             # the lines to check (lines left out are not checked)
          - {seq: 1, outcome: covered, rule: commonly_used.deferoxamine}   # rule: a reason's rule id, or a list
          - {seq: 2, outcome: denied, category: not_reasonable_and_necessary}
          - {seq: 3, outcome: pending, missing: [cd19_positive]}          # missing: exactly these, in any order
          - {seq: 4, outcome: refer, refer_to: LCD L33794}
          - {seq: 5, outcome: error, message: service_date}               # message: a part of the error message
        # or, for a claim the contract rejects as a whole:  expect: {outcome: error, message: lines}

An inline claim gets `id` = the case name unless it gives one; dates may be written unquoted.
A claim from `claim_file` is used as it is, without the defaults.

Each case is decided with the compiled policy and compared line by line; it is also decided by
the reference interpreter, whose trace gives the explanation tree of a failure and the coverage.
Coverage counts, per policy, the rules evaluated, the criteria (nodes of a rule's condition) seen
true and seen false, and the HCPCS codes and ICD-10-CM entries the cases exercised.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from compiler.interpret import InterpretedPredicates, TraceNode, rule_condition
from compiler.resolve import normalize_icd
from compiler.words import CATEGORY_WORDS, category_words, describe, limit_words, window_words
from dsl import ir
from dsl.diagnostics import PolicyError

OUTCOMES = ("covered", "denied", "pending", "refer", "not_applicable", "error")
CATEGORIES = tuple(CATEGORY_WORDS)
_TOP_KEYS = ("policy", "defaults", "cases")
_CASE_KEYS = ("name", "claim", "claim_file", "as_of", "known_at", "expect")
_EXPECT_KEYS = (
    "seq",
    "outcome",
    "category",
    "refer_to",
    "missing",
    "rule",
    "message",
    "allowed_units",
    "denied_units",
)
# An expectation key only means something for one outcome; elsewhere it is a mistake in the file.
_KEY_OUTCOME = {"category": "denied", "refer_to": "refer", "missing": "pending", "message": "error"}
TESTS_SUFFIX = ".tests.yaml"


class TestFileError(Exception):
    """A tests file that cannot be used at all: not YAML, or without its policy or cases."""

    __test__ = False  # not a pytest test class, whatever its name


# ---------------------------------------------------------------- the tests file


@dataclass(frozen=True)
class LineExpectation:
    seq: int
    outcome: str
    category: str | None = None
    refer_to: str | None = None
    missing: tuple[str, ...] | None = None
    rules: tuple[str, ...] = ()
    message: str | None = None
    allowed_units: float | None = None  # a line paid in part: the units covered
    denied_units: float | None = None

    def words(self) -> str:
        if self.allowed_units is not None or self.denied_units is not None:
            return f"{self.outcome.replace('_', ' ')} ({_units_words(self.allowed_units, self.denied_units)})"
        if self.outcome == "denied" and self.category:
            return f"denied ({category_words(self.category)})"
        if self.outcome == "refer" and self.refer_to:
            return f"refer to {self.refer_to}"
        if self.outcome == "pending" and self.missing is not None:
            return f"pending (needs {', '.join(sorted(self.missing))})"
        if self.outcome == "error" and self.message:
            return f"an error mentioning `{self.message}`"
        return self.outcome.replace("_", " ")


@dataclass(frozen=True)
class ClaimErrorExpectation:
    """The contract rejects the claim as a whole (`"outcome": "error"` on the decision)."""

    message: str | None = None


@dataclass
class Case:
    index: int  # 1-based position in the file
    name: str
    claim: dict | None = None
    source: str = "inline"  # or the claim_file reference
    as_of: datetime.date | None = None
    known_at: datetime.date | None = None
    expect: list[LineExpectation] | ClaimErrorExpectation = field(default_factory=list)
    problem: str | None = None  # why the case cannot run; it then fails with this message

    @property
    def label(self) -> str:
        return f"case {self.name}" if self.name else f"case #{self.index}"


@dataclass
class TestFile:
    __test__ = False

    path: Path
    policy_path: Path
    cases: list[Case]


def load_tests(path: str | os.PathLike) -> TestFile:
    """Read and validate a tests file. A file-level problem raises TestFileError; a malformed
    case is kept with its `problem`, so the other cases still run."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise TestFileError(f"{path}: cannot read the file: {getattr(err, 'strerror', None) or err}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader: as safe as yaml.safe_load
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise TestFileError(f"{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise TestFileError(f"{path}: expected a mapping with `policy` and `cases`, got {_kind(data)}")
    unknown = [k for k in data if k not in _TOP_KEYS and not (isinstance(k, str) and k.startswith("x-"))]
    if unknown:
        raise TestFileError(
            f"{path}: unknown key `{unknown[0]}` (a tests file has {', '.join(_TOP_KEYS)}, and `x-` keys for anchors)"
        )
    for key in ("policy", "cases"):
        if key not in data:
            raise TestFileError(f"{path}: the required key `{key}` is missing")
    policy = data["policy"]
    if not isinstance(policy, str) or not policy.strip():
        raise TestFileError(f"{path}: `policy` must be the policy's file name, got {_kind(policy)}")
    policy_path = (path.parent / policy).resolve() if not Path(policy).is_absolute() else Path(policy)
    if not policy_path.is_file():
        raise TestFileError(f"{path}: the policy `{policy}` does not exist (looked for {policy_path})")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise TestFileError(f"{path}: `defaults` must be a mapping of claim fields, got {_kind(defaults)}")
    if "line" in defaults and not isinstance(defaults["line"], dict):
        raise TestFileError(f"{path}: `defaults.line` must be a mapping of line fields")
    raw_cases = data["cases"]
    if not isinstance(raw_cases, list) or not raw_cases:
        raise TestFileError(f"{path}: `cases` must be a non-empty list of cases, got {_kind(raw_cases)}")
    cases: list[Case] = []
    names: dict[str, int] = {}
    claim_files: dict[Path, dict] = {}
    for index, raw in enumerate(raw_cases, start=1):
        case = _read_case(raw, index, path, defaults, claim_files)
        if case.problem is None and case.name in names:
            case.problem = f"the name is already used by case #{names[case.name]}"
        names.setdefault(case.name, index)
        if case.problem is not None:
            where = f"{path}: case #{index}" + (f' "{case.name}"' if case.name else "")
            case.problem = f"{where}: {case.problem}"
        cases.append(case)
    return TestFile(path, policy_path, cases)


class _Loader(yaml.SafeLoader):
    """yaml.safe_load's loader, except that a date that does not exist (2026-02-30) stays a string.

    safe_load raises a bare ValueError for it, with no line to point at; kept as a string, it is
    reported as the case's bad date, or decided as the contract says (a line with a bad date is an error).
    """


def _timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode):
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


class _Bad(Exception):
    """A problem with one case, found while reading it."""


def _read_case(raw, index: int, path: Path, defaults: dict, claim_files: dict) -> Case:
    if not isinstance(raw, dict):
        return Case(index, "", problem=f"expected a mapping with name, claim and expect, got {_kind(raw)}")
    name = raw.get("name")
    case = Case(index, name.strip() if isinstance(name, str) else "")
    try:
        unknown = [k for k in raw if k not in _CASE_KEYS]
        if unknown:
            raise _Bad(f"unknown key `{unknown[0]}` (a case has {', '.join(_CASE_KEYS)})")
        if not isinstance(name, str) or not name.strip():
            raise _Bad("`name` is missing or not a string")
        if ("claim" in raw) == ("claim_file" in raw):
            raise _Bad("give exactly one of `claim` (inline) and `claim_file`")
        case.as_of = _read_date(raw.get("as_of"), "as_of")
        case.known_at = _read_date(raw.get("known_at"), "known_at")
        if "expect" not in raw:
            raise _Bad("`expect` is missing")
        case.expect = _read_expect(raw["expect"])
        if "claim" in raw:
            case.claim = _inline_claim(raw["claim"], defaults, case.name)
        else:
            case.source = str(raw["claim_file"])
            case.claim = _claim_from_file(raw["claim_file"], path, claim_files)
    except _Bad as err:
        case.problem = str(err)
    return case


def _read_date(value, key: str) -> datetime.date | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        raise _Bad(f"`{key}` must be a date (YYYY-MM-DD), not a date and time")
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    raise _Bad(f"`{key}`: `{value}` is not a date (YYYY-MM-DD)")


def _read_expect(raw) -> list[LineExpectation] | ClaimErrorExpectation:
    if isinstance(raw, dict):
        if raw.get("outcome") != "error" or set(raw) - {"outcome", "message"}:
            raise _Bad("`expect` is a list of line expectations, or `{outcome: error, message: ...}` for a claim error")
        message = raw.get("message")
        if message is not None and not isinstance(message, str):
            raise _Bad("`expect.message` must be a string")
        return ClaimErrorExpectation(message)
    if not isinstance(raw, list) or not raw:
        raise _Bad(f"`expect` must be a non-empty list of line expectations, got {_kind(raw)}")
    out: list[LineExpectation] = []
    seen: set[int] = set()
    for i, item in enumerate(raw):
        where = f"expect[{i}]"
        if not isinstance(item, dict):
            raise _Bad(f"{where}: expected a mapping like {{seq: 1, outcome: covered}}, got {_kind(item)}")
        unknown = [k for k in item if k not in _EXPECT_KEYS]
        if unknown:
            raise _Bad(f"{where}: unknown key `{unknown[0]}` (expected {', '.join(_EXPECT_KEYS)})")
        seq = item.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise _Bad(f"{where}.seq: expected the line's seq (an integer), got {_kind(seq)}")
        if seq in seen:
            raise _Bad(f"{where}: line {seq} is expected twice")
        seen.add(seq)
        outcome = item.get("outcome")
        if outcome not in OUTCOMES:
            raise _Bad(f"{where}.outcome: `{outcome}` is not one of {', '.join(OUTCOMES)}")
        for key, belongs in _KEY_OUTCOME.items():
            if key in item and outcome != belongs:
                raise _Bad(f"{where}: `{key}` goes with outcome {belongs}, not {outcome}")
        category = item.get("category")
        if category is not None and category not in CATEGORIES:
            raise _Bad(f"{where}.category: `{category}` is not one of {', '.join(CATEGORIES)}")
        refer_to = item.get("refer_to")
        if refer_to is not None and not isinstance(refer_to, str):
            raise _Bad(f"{where}.refer_to: expected a string")
        missing = item.get("missing")
        if missing is not None:
            if not isinstance(missing, list) or not all(isinstance(m, str) for m in missing):
                raise _Bad(f"{where}.missing: expected a list of fact names")
            missing = tuple(missing)
        rules = item.get("rule", ())
        if isinstance(rules, str):
            rules = (rules,)
        if not isinstance(rules, (list, tuple)) or not all(isinstance(r, str) for r in rules):
            raise _Bad(f"{where}.rule: expected a rule id or a list of them")
        message = item.get("message")
        if message is not None and not isinstance(message, str):
            raise _Bad(f"{where}.message: expected a string")
        units = {}
        for key in ("allowed_units", "denied_units"):
            value = item.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise _Bad(f"{where}.{key}: expected a number of units")
            units[key] = value
        out.append(LineExpectation(seq, outcome, category, refer_to, missing, tuple(rules), message, **units))
    return out


def _deep_merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _deep_merge(base[key], value) if key in base else value
        return out
    return over


def _plain(value):
    """JSON values: YAML reads unquoted dates as dates, the contract wants strings."""
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _inline_claim(raw, defaults: dict, name: str) -> dict:
    if not isinstance(raw, dict):
        raise _Bad(f"`claim` must be a mapping (a claim per docs/claims-contract.md), got {_kind(raw)}")
    claim = _deep_merge(defaults, raw)
    line_defaults = claim.pop("line", None) or {}
    if not isinstance(line_defaults, dict):
        raise _Bad("`claim.line` must be a mapping of line fields")
    lines = claim.get("lines")
    if isinstance(lines, list):
        built = []
        for position, line in enumerate(lines, start=1):
            if isinstance(line, str):
                line = {"hcpcs": line}
            if isinstance(line, dict):
                line = _deep_merge(line_defaults, line)
                line.setdefault("seq", position)
            built.append(line)
        claim["lines"] = built
    claim.setdefault("id", name)
    return _plain(claim)


def _claim_from_file(ref, path: Path, cache: dict) -> dict:
    if not isinstance(ref, str) or not ref.strip():
        raise _Bad("`claim_file` must be a file name, e.g. claims.jsonl#claim-id")
    file_part, _, claim_id = ref.partition("#")
    file = (path.parent / file_part).resolve()
    if file not in cache:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise _Bad(f"claim_file `{file_part}`: cannot read it ({getattr(err, 'strerror', None) or err})") from None
        if file.suffix == ".jsonl":
            claims = []
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    claims.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise _Bad(f"claim_file `{file_part}`, line {number}: not valid JSON ({err.msg})") from None
            cache[file] = {"jsonl": claims}
        else:
            try:
                cache[file] = {"json": json.loads(text)}
            except json.JSONDecodeError as err:
                raise _Bad(f"claim_file `{file_part}`: not valid JSON ({err.msg}, line {err.lineno})") from None
    found = cache[file]
    if "json" in found:
        if claim_id:
            raise _Bad(f"claim_file `{ref}`: `#id` picks a claim from a .jsonl file; a .json file is one claim")
        return found["json"]
    claims = found["jsonl"]
    if not claim_id:
        if len(claims) == 1:
            return claims[0]
        raise _Bad(f"claim_file `{ref}`: name the claim, e.g. `{file_part}#claim-id` ({len(claims)} claims)")
    for claim in claims:
        if isinstance(claim, dict) and claim.get("id") == claim_id:
            return claim
    raise _Bad(f"claim_file `{ref}`: no claim with id `{claim_id}`")


def _shown(path) -> str:
    """A path as short as it can be said from here."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _kind(value) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    text = str(value)
    return f"`{text if len(text) <= 40 else text[:37] + '...'}`"


# ---------------------------------------------------------------- comparing decisions


def _units_words(allowed, denied) -> str:
    parts = []
    if allowed is not None:
        parts.append(f"{allowed:g} units allowed")
    if denied is not None:
        parts.append(f"{denied:g} denied")
    return ", ".join(parts)


def line_words(line: dict) -> str:
    """A decided line's outcome as a reviewer reads it: `denied (not reasonable and necessary)`."""
    outcome = line.get("outcome")
    if outcome == "covered" and "allowed_units" in line:
        return f"covered ({_units_words(line['allowed_units'], line['denied_units'])})"
    if outcome == "denied":
        category = line.get("category")
        return f"denied ({category_words(category)})"
    if outcome == "refer":
        return f"refer to {line.get('refer_to')}"
    if outcome == "pending":
        return f"pending (needs {', '.join(line.get('missing') or ())})"
    if outcome == "error":
        return f"error ({line.get('message')})"
    return str(outcome).replace("_", " ")


def differences(case: Case, decision: dict) -> list[str]:
    """Every way the decision differs from the case's expectations, in line order."""
    label = case.label
    expect = case.expect
    if isinstance(expect, ClaimErrorExpectation):
        if decision.get("outcome") != "error":
            got = ", ".join(f"line {ln.get('seq')} {line_words(ln)}" for ln in decision.get("lines", ()))
            return [f"{label}: expected a claim error, got line decisions ({got})"]
        if expect.message and expect.message not in str(decision.get("message")):
            return [f"{label}: expected a claim error mentioning `{expect.message}`, got: {decision.get('message')}"]
        return []
    if decision.get("outcome") == "error":
        return [f"{label}: expected line decisions, got a claim error: {decision.get('message')}"]
    lines = {ln.get("seq"): ln for ln in decision.get("lines", ())}
    found: list[str] = []
    for exp in expect:
        where = f"{label}, line {exp.seq}"
        got = lines.get(exp.seq)
        if got is None:
            found.append(f"{where}: expected {exp.words()}, but the claim has no line {exp.seq}")
            continue
        if (
            got.get("outcome") != exp.outcome
            or (exp.category is not None and got.get("category") != exp.category)
            or (exp.refer_to is not None and got.get("refer_to") != exp.refer_to)
            or (exp.missing is not None and sorted(got.get("missing") or ()) != sorted(exp.missing))
            or (exp.message is not None and exp.message not in str(got.get("message")))
            or (exp.allowed_units is not None and got.get("allowed_units") != exp.allowed_units)
            or (exp.denied_units is not None and got.get("denied_units") != exp.denied_units)
        ):
            found.append(f"{where}: expected {exp.words()}, got {line_words(got)}")
            continue
        cited = [r.get("rule") for r in got.get("reasons", ())]
        absent = [r for r in exp.rules if r not in cited]
        if absent:
            found.append(
                f"{where}: expected rule {', '.join(absent)} among the reasons, got {', '.join(cited) or 'no reasons'}"
            )
    return found


def _disagreement(case: Case, compiled: dict, interpreted: dict) -> str | None:
    """Where the compiled predicates and the reference interpreter decide a line differently."""

    def key(line):
        return (line.get("outcome"), line.get("category"), line.get("refer_to"), sorted(line.get("missing") or ()))

    if compiled.get("outcome") == "error" or interpreted.get("outcome") == "error":
        return None
    for a, b in zip(compiled.get("lines", ()), interpreted.get("lines", ()), strict=False):
        if key(a) != key(b):
            return (
                f"{case.label}, line {a.get('seq')}: the compiled policy decides {line_words(a)} "
                f"but the reference interpreter decides {line_words(b)}"
            )
    return None


# ---------------------------------------------------------------- coverage


@dataclass(frozen=True)
class Criterion:
    """One node of a rule's condition, as coverage counts it."""

    rule: str
    path: tuple  # positions from the root of the rule's condition; ("limit",) for a limit's count
    text: str
    clause: str | None = None

    @property
    def where(self) -> str:
        return ".".join(str(p) for p in self.path) if self.path else "root"

    def describe(self) -> str:
        clause = f"  <{self.clause}>" if self.clause else ""
        return f"{self.rule} [{self.where}] {self.text}{clause}"


@dataclass
class _Node:
    path: tuple
    text: str
    clause: str | None
    constant: bool
    children: list[_Node]
    unit: tuple = ()


def _clip(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


class PolicyCoverage:
    """What a policy's test cases exercised: rules, criteria seen true and false, codes.

    A criterion is a node of a rule's whole condition (its sections' requirements and its own
    `when`), as the explanation tree shows it: the whole condition, each item, each branch of
    an any-of, each condition of an all-of, each criteria set; a limit's count is one more.
    A chain of nodes with one child each (an item with one condition, a `not`) is one
    criterion, and a condition that is always true (`deny E1399`) is none.
    """

    def __init__(self, policy):
        model = policy.model
        self.policy_id = policy.id
        self.label = _shown(policy.label)
        self.cases = 0
        self.other_revision_cases = 0  # cases decided under the revision known at a date: not counted
        self.rules = [rule.id for rule in model.rules]
        self.evaluated: set[str] = set()
        self._kinds = {rule.id: rule.kind for rule in model.rules}
        self._trees: dict[str, _Node] = {}
        self.criteria: dict[tuple, Criterion] = {}
        for rule in model.rules:
            if rule.kind in ("otherwise", "follow"):
                continue
            tree = self._build(rule_condition(rule), rule.id, (), model, root=True)
            _assign_units(tree, None)
            constant = set()
            _constant_units(tree, constant)
            self._trees[rule.id] = tree
            for node in _walk_static(tree):
                if node.path == node.unit and node.unit not in constant:
                    self.criteria[(rule.id, node.path)] = Criterion(rule.id, node.path, node.text, node.clause)
            if rule.kind == "limit":
                self.criteria[(rule.id, ("limit",))] = Criterion(
                    rule.id, ("limit",), f"over the limit of {limit_words(rule).split(' to ', 1)[1]}"
                )
        self.seen_true: set[tuple] = set()
        self.seen_false: set[tuple] = set()

        # Base items and the lines that follow them are decided through the relation, not by
        # naming them, so they are added here to count as codes the policy decides.
        self.codes: dict[str, list[str]] = {}
        for rule in model.rules:
            for code in model.targets.get(rule.id, {}):
                self.codes.setdefault(code, []).append(rule.id)
        if model.follow is not None:
            for code in list(model.bases) + list(model.dependents):
                names = self.codes.setdefault(code, [])
                if model.follow.id not in names:
                    names.append(model.follow.id)
        self.codes_seen: set[str] = set()

        # Entries as the policy writes them, so a report names what an author can find in the file.
        self.dx_entries: list[tuple[str, str, str, str]] = []  # (set, as written, lo, hi)
        for code_set in model.policy.code_sets:
            if code_set.kind != "diagnoses":
                continue
            for entry in code_set.entries:
                if isinstance(entry, ir.Ref):
                    continue
                lo = normalize_icd(entry.code)
                hi = normalize_icd(entry.last) if entry.last else lo
                written = f"{entry.code}-{entry.last}" if entry.last else entry.code
                self.dx_entries.append((code_set.name, written, lo, hi))
        self.dx_seen: set[int] = set()

    # ------------------------------------------------------------ the criteria of a rule

    def _build(self, cond, owner: str, path: tuple, model, root: bool = False) -> _Node:
        """The condition tree as the interpreter traces it: a node's children are, in order,
        the trace node's children, so the two can be walked side by side."""
        clause = None
        if isinstance(cond, (ir.AllOf, ir.AnyOf, ir.AtLeast)):
            items = cond.items
            word = {ir.AllOf: "all of", ir.AnyOf: "any of"}.get(type(cond), f"at least {getattr(cond, 'count', '')} of")
            text = describe(cond) if len(items) == 1 else f"{word}: {describe(cond)}"
            if root:
                text = f"whole condition: {describe(cond)}"
            children = [self._build(item, owner, path + (i,), model) for i, item in enumerate(items)]
        elif isinstance(cond, ir.Not):
            text = describe(cond)
            children = [self._build(cond.item, owner, path + (0,), model)]
        elif isinstance(cond, ir.Clause):
            clause = f"{owner}.{cond.name}"
            window = window_words(cond.window)
            text = f"item {cond.label}" + (f" ({window})" if window else "")
            if cond.passages:
                text += f' "{_clip(cond.passages[0].text, 60)}"'
            children = [self._build(item, owner, path + (i,), model) for i, item in enumerate(cond.condition.items)]
        elif isinstance(cond, ir.Truth) and cond.name in model.criteria:
            crit = model.criteria[cond.name]
            text = f"{crit.title} ({crit.name})"
            children = [self._build(item, crit.name, path + (i,), model) for i, item in enumerate(crit.condition.items)]
        else:
            text = describe(cond)
            children = []
        return _Node(path, _clip(text), clause, isinstance(cond, ir.Always), children)

    # ------------------------------------------------------------ recording

    def record(self, claim, decision: dict, evaluations: list[tuple[str, TraceNode]]) -> None:
        """Count one case: its claim's codes and diagnoses, and every rule evaluation it made."""
        self.cases += 1
        if isinstance(claim, dict):
            for line in claim.get("lines") or ():
                if isinstance(line, dict) and isinstance(line.get("hcpcs"), str):
                    code = line["hcpcs"].strip().upper()
                    if code in self.codes:
                        self.codes_seen.add(code)
            for dx in claim.get("diagnoses") or ():
                if isinstance(dx, str):
                    self._record_dx(normalize_icd(dx.strip()))
        for rule_id, node in evaluations:
            self.evaluated.add(rule_id)
            tree = self._trees.get(rule_id)
            if tree is not None and node is not None:
                self._record_node(rule_id, tree, node)
        # Rules that decide without a condition of their own (otherwise, follow) and the
        # count of a limit appear only in the lines' traces.
        for line in decision.get("lines", ()):
            for step in line.get("trace") or ():
                self.evaluated.add(step.rule)
                if step.counted and self._kinds.get(step.rule) == "limit":
                    # The engine reads a limit's condition only for a line past the limit, so
                    # an entry with a condition node is a line over it.
                    self._see((step.rule, ("limit",)), step.node is not None)

    def _record_dx(self, code: str) -> None:
        for index, (_, _, lo, hi) in enumerate(self.dx_entries):
            if lo <= code[: len(lo)] <= hi:
                self.dx_seen.add(index)

    def _record_node(self, rule_id: str, static: _Node, node: TraceNode) -> None:
        if static.path == static.unit:
            self._see((rule_id, static.path), node.value)
        for s_child, t_child in zip(static.children, node.children, strict=False):
            self._record_node(rule_id, s_child, t_child)

    def _see(self, key: tuple, value) -> None:
        if key not in self.criteria:
            return
        if value is True:
            self.seen_true.add(key)
        elif value is False:
            self.seen_false.add(key)

    # ------------------------------------------------------------ figures

    @property
    def both(self) -> list[Criterion]:
        return [c for k, c in self.criteria.items() if k in self.seen_true and k in self.seen_false]

    @property
    def only_true(self) -> list[Criterion]:
        return [c for k, c in self.criteria.items() if k in self.seen_true and k not in self.seen_false]

    @property
    def only_false(self) -> list[Criterion]:
        return [c for k, c in self.criteria.items() if k in self.seen_false and k not in self.seen_true]

    @property
    def never(self) -> list[Criterion]:
        return [c for k, c in self.criteria.items() if k not in self.seen_true and k not in self.seen_false]

    @property
    def percent(self) -> float:
        """Criteria seen both true and false, in percent of all criteria (100 when there are none)."""
        return 100.0 * len(self.both) / len(self.criteria) if self.criteria else 100.0

    @property
    def rules_never_evaluated(self) -> list[str]:
        return [r for r in self.rules if r not in self.evaluated]

    @property
    def codes_never_seen(self) -> list[str]:
        return [c for c in self.codes if c not in self.codes_seen]

    @property
    def dx_never_seen(self) -> list[str]:
        return [f"{name} {written}" for i, (name, written, _, _) in enumerate(self.dx_entries) if i not in self.dx_seen]

    def summary(self) -> str:
        """The criteria figure, e.g. `criteria: 152 of 180 seen both true and false (84.4%)`."""
        return f"criteria: {len(self.both)} of {len(self.criteria)} seen both true and false ({self.percent:.1f}%)"

    def report(self) -> str:
        total_rules = len(self.rules)
        evaluated = total_rules - len(self.rules_never_evaluated)
        head = f"coverage of {self.policy_id} ({self.label}) by {self.cases} case{'s' if self.cases != 1 else ''}"
        if self.other_revision_cases:
            head += f" ({self.other_revision_cases} more, decided under an earlier revision with known_at, not counted)"
        out = [head + ":"]
        line = f"  rules: {evaluated} of {total_rules} evaluated at least once"
        if self.rules_never_evaluated:
            line += "; never evaluated: " + ", ".join(self.rules_never_evaluated)
        out.append(line)
        out.append(
            f"  {self.summary()}; {len(self.only_true)} seen only true, {len(self.only_false)} only false, "
            f"{len(self.never)} never reached"
        )
        out.append(
            "    (a criterion is a node of a rule's condition as the explanation tree shows it: the whole condition,"
        )
        out.append(
            "     each item, each branch of an any-of, each condition of an all-of, each criteria set, a limit's count;"
        )
        out.append("     a chain of single conditions counts once, per rule; conditions always true are left out)")
        for title, items in (
            ("never reached (neither true nor false)", self.never),
            ("never seen true (seen false only)", self.only_false),
            ("never seen false (seen true only)", self.only_true),
        ):
            if items:
                out.append(f"  {title}: {len(items)}")
                out.extend(f"    {c.describe()}" for c in items)
        seen_codes = len(self.codes) - len(self.codes_never_seen)
        line = f"  HCPCS codes: {seen_codes} of {len(self.codes)} named by rules appear on a test line"
        if self.codes_never_seen:
            line += "; never: " + ", ".join(self.codes_never_seen)
        out.append(line)
        seen_dx = len(self.dx_entries) - len(self.dx_never_seen)
        line = f"  ICD-10-CM entries: {seen_dx} of {len(self.dx_entries)} matched by a test diagnosis"
        if self.dx_never_seen:
            line += "; never: " + ", ".join(self.dx_never_seen)
        out.append(line)
        return "\n".join(out)


def _assign_units(node: _Node, unit: tuple | None) -> None:
    node.unit = node.path if unit is None else unit
    single = len(node.children) == 1
    for child in node.children:
        _assign_units(child, node.unit if single else None)


def _constant_units(node: _Node, into: set) -> None:
    if node.constant:
        into.add(node.unit)
    for child in node.children:
        _constant_units(child, into)


def _walk_static(node: _Node):
    yield node
    for child in node.children:
        yield from _walk_static(child)


class _Recorder:
    """The reference interpreter's predicates, keeping every rule evaluation and its trace.

    A line's own trace leaves out what was evaluated for a base item the member owns and for
    the items a base line serves besides the one that decided it; recording here misses none.
    """

    def __init__(self, model):
        self._interpreted = InterpretedPredicates(model)
        self.evaluations: list[tuple[str, TraceNode]] = []

    def __getitem__(self, rule_id: str):
        return self._interpreted[rule_id]

    def trace(self, rule_id: str, ctx):
        value, node = self._interpreted.trace(rule_id, ctx)
        self.evaluations.append((rule_id, node))
        return value, node


# ---------------------------------------------------------------- running


@dataclass
class CaseResult:
    case: Case
    passed: bool
    differences: list[str] = field(default_factory=list)
    explanation: str | None = None  # the explanation tree of a failing case

    @property
    def difference(self) -> str | None:
        return self.differences[0] if self.differences else None


@dataclass
class FileResult:
    tests: TestFile
    results: list[CaseResult]
    policy_problem: str | None = None  # the policy could not be loaded: every case failed

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.passed)


class _PolicyProblem(Exception):
    """The policy (or the revision a case asks for) cannot be loaded; `detail` is worth showing once."""

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.detail = detail


class Runner:
    """Runs tests files; loads each policy (and revision) once and gathers coverage per policy."""

    def __init__(self):
        self._policies: dict[tuple, object] = {}
        self._engines: dict[int, tuple] = {}
        self.coverage: dict[str, PolicyCoverage] = {}

    def policy(self, path: Path, known_at: datetime.date | None = None):
        from medpol.api import load_policy
        from medpol.revisions import RefError

        key = (str(path), known_at)
        if key not in self._policies:
            try:
                self._policies[key] = load_policy(path, known_at)
            except PolicyError as err:
                errors = sum(1 for d in err.diagnostics if d.severity == "error")
                where = f"{_shown(path)}" + (f" as known at {known_at}" if known_at else "")
                self._policies[key] = _PolicyProblem(
                    f"the policy {where} has {errors} error{'s' if errors != 1 else ''} (shown above)",
                    f"{where}: {errors} error{'s' if errors != 1 else ''}; its cases fail\n{err.render()}",
                )
            except RefError as err:
                self._policies[key] = _PolicyProblem(f"no version of the policy to decide with: {err}")
        found = self._policies[key]
        if isinstance(found, _PolicyProblem):
            raise found
        return found

    def _explainer(self, policy):
        from medpol.decide import Engine

        found = self._engines.get(id(policy))
        if found is None:
            recorder = _Recorder(policy.model)
            engine = Engine(policy.model, recorder, policy.reasons, tracer=recorder)
            # Other policies' criteria are read as the compiled policy reads them.
            engine.library = policy.engine.library
            engine.facts = policy.engine.facts
            found = (policy, recorder, engine)
            self._engines[id(policy)] = found
        return found[1], found[2]

    def coverage_of(self, policy) -> PolicyCoverage:
        key = str(policy.label)
        if key not in self.coverage:
            self.coverage[key] = PolicyCoverage(policy)
        return self.coverage[key]

    def run(self, tests: TestFile) -> FileResult:
        results: list[CaseResult] = []
        problem = None
        for case in tests.cases:
            if case.problem is not None:
                results.append(CaseResult(case, False, [case.problem]))
                continue
            try:
                policy = self.policy(tests.policy_path, case.known_at)
            except _PolicyProblem as err:
                if err.detail and problem is None:
                    problem = err.detail
                results.append(CaseResult(case, False, [f"{case.label}: {err}"]))
                continue
            results.append(self._run_case(case, policy, tests.policy_path))
        return FileResult(tests, results, problem)

    def _run_case(self, case: Case, policy, policy_path: Path) -> CaseResult:
        from medpol.explain import render

        decision = policy.decide(case.claim, case.as_of)
        recorder, engine = self._explainer(policy)
        recorder.evaluations = []
        explained = engine.decide(case.claim, case.as_of)
        if case.known_at is None:
            self.coverage_of(policy).record(case.claim, explained, recorder.evaluations)
        else:
            # Coverage is of the policy as it stands; a case under an earlier revision tests that one.
            try:
                self.coverage_of(self.policy(policy_path, None)).other_revision_cases += 1
            except _PolicyProblem:
                pass
        recorder.evaluations = []
        found = differences(case, decision)
        if not found:
            disagreement = _disagreement(case, decision, explained)
            if disagreement:
                found = [disagreement]
        if not found:
            return CaseResult(case, True)
        return CaseResult(case, False, found, render(explained, policy, case.as_of))


def format_failure(result: CaseResult, indent: str = "    ") -> str:
    """A failing case for a person: its first difference, how many more, and the explanation tree."""
    lines = [f"FAILED {result.difference}"]
    more = len(result.differences) - 1
    if more > 0:
        lines.append(f"{indent}({more} more difference{'s' if more != 1 else ''} in this case)")
    if result.explanation:
        lines.extend(indent + text if text else "" for text in result.explanation.splitlines())
    return "\n".join(lines)
