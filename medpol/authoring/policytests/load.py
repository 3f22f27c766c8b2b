"""Policy tests files: read the YAML cases kept beside a policy into cases to run.

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

Every problem found in a tests file is pointed at as `FILE:LINE:COL: ...`, at the key or value it
is about (at the mapping that lacks it, for a missing key); a case's problems and failures name it:
`FILE:LINE:COL: case #N "name": ...`.
"""

from __future__ import annotations

import datetime
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from medpol.compiler.words import CATEGORY_WORDS, category_words
from medpol.dsl.diagnostics import not_utf8_at

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

Position = tuple[int, int]  # 1-based line and column in the tests file


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
    at: Position | None = field(default=None, compare=False)  # where the expectation is written

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
    at: Position | None = field(default=None, compare=False)


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
    file: str = ""  # the tests file, as it was named
    at: Position | None = None  # where the case starts in it
    problem_at: Position | None = None  # where the problem is, when it is in a part of the case

    @property
    def label(self) -> str:
        return f'case #{self.index} "{self.name}"' if self.name else f"case #{self.index}"

    def heading(self, at: Position | None = None) -> str:
        """`FILE:LINE:COL: case #N "name"`, pointing at `at` (a part of the case) or else at the case."""
        return f"{_where(self.file, at or self.at)}: {self.label}"


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
        raw = path.read_bytes()
    except OSError as err:
        raise TestFileError(f"{path}: cannot read the file: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        # Point at the byte, as a YAML error points at its character.
        line, column = not_utf8_at(raw, err)
        raise TestFileError(
            f"{path}:{line}:{column}: not UTF-8 text: byte 0x{raw[err.start]:02x} (save the file as UTF-8)"
        ) from None
    loader = _Loader(text)  # a SafeLoader: as safe as yaml.safe_load
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        kind = "" if isinstance(err, _Refused) else "not valid YAML: "
        raise TestFileError(f"{where}: {kind}{problem}") from None
    finally:
        loader.dispose()
    positions = loader.positions

    def bad(at: Position | None, problem: str) -> TestFileError:
        return TestFileError(f"{_where(path, at)}: {problem}")

    if not isinstance(data, dict):
        got = _kind(data)
        raise bad(
            positions.of(data) or loader.document_at or (1, 1),
            f"expected a mapping with `policy` and `cases`, got {got}",
        )
    unknown = [k for k in data if k not in _TOP_KEYS and not (isinstance(k, str) and k.startswith("x-"))]
    if unknown:
        raise bad(
            positions.key(data, unknown[0]),
            f"unknown key `{unknown[0]}` (a tests file has {', '.join(_TOP_KEYS)}, and `x-` keys for anchors)",
        )
    for key in ("policy", "cases"):
        if key not in data:
            raise bad(positions.of(data), f"the required key `{key}` is missing")
    policy = data["policy"]
    # A NUL character is in no file name: the system refuses to look one up.
    if not isinstance(policy, str) or not policy.strip() or "\0" in policy:
        raise bad(positions.value(data, "policy"), f"`policy` must be the policy's file name, got {_kind(policy)}")
    policy_path = (path.parent / policy).resolve() if not Path(policy).is_absolute() else Path(policy)
    if not policy_path.is_file():
        raise bad(positions.value(data, "policy"), f"the policy `{policy}` does not exist (looked for {policy_path})")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise bad(
            positions.value(data, "defaults"), f"`defaults` must be a mapping of claim fields, got {_kind(defaults)}"
        )
    if "line" in defaults and not isinstance(defaults["line"], dict):
        raise bad(positions.value(defaults, "line"), "`defaults.line` must be a mapping of line fields")
    raw_cases = data["cases"]
    if not isinstance(raw_cases, list) or not raw_cases:
        raise bad(positions.value(data, "cases"), f"`cases` must be a non-empty list of cases, got {_kind(raw_cases)}")
    cases: list[Case] = []
    names: dict[str, int] = {}
    claim_files: dict[Path, dict] = {}
    for index, raw in enumerate(raw_cases, start=1):
        case = _read_case(raw, index, path, defaults, claim_files, positions)
        case.at = positions.item(raw_cases, index - 1)
        if case.problem is None and case.name in names:
            case.problem = f"the name is already used by case #{names[case.name]}"
            case.problem_at = positions.value(raw, "name")
        names.setdefault(case.name, index)
        if case.problem is not None:
            case.problem = f"{case.heading(case.problem_at)}: {case.problem}"
        cases.append(case)
    return TestFile(path, policy_path, cases)


def _where(path, at: Position | None) -> str:
    return f"{path}:{at[0]}:{at[1]}" if at is not None else str(path)


# Far beyond any real tests file (the bundled ones nest 9 deep and their aliases add a few
# thousand values), and far below what would exhaust Python's stack or the machine's memory.
_MAX_DEPTH = 64
_MAX_ALIASED = 100_000


class _Refused(yaml.MarkedYAMLError):
    """YAML a tests file does not accept: a key given twice, nesting or aliases past the limits."""


class _Loader(yaml.SafeLoader):
    """yaml.safe_load's loader, except that:

    - a date that does not exist (2026-02-30) stays a string. safe_load raises a bare ValueError
      for it, with no line to point at; kept as a string, it is reported as the case's bad date,
      or decided as the contract says (a line with a bad date is an error);
    - a key given twice in a mapping is refused: safe_load keeps the last value and drops the
      first without a word (a key that a `<<` merge brings in may still be overridden);
    - nesting past _MAX_DEPTH is refused, where safe_load would exhaust Python's stack;
    - aliases are refused that stand for more than _MAX_ALIASED values in all, that nest past
      _MAX_DEPTH once expanded, or that sit inside the value they name: each case's claim is
      copied in full, so a few lines of aliases nested in one another ("billion laughs") would
      otherwise never finish, and the others would exhaust the stack or recurse without end.

    It also keeps where each mapping and list it builds starts, and where their keys, values and
    items start (`positions`), for the problems found in them afterwards.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0  # the collections around the node being read
        self._aliased = 0  # the values that aliases have added, once expanded
        self._measured: dict[int, tuple[int, int]] = {}  # id(node) -> values, levels; aliases expanded
        self.positions = _Positions()
        self.document_at: Position | None = None  # where the document's value starts

    def construct_document(self, node):
        self.document_at = _position(node.start_mark)
        return super().construct_document(node)

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            node = self.anchors.get(event.anchor)
            if node is not None:  # else safe_load's own error: an undefined alias
                self._expand(node, event)
            return super().compose_node(parent, index)
        if self._depth >= _MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise _Refused(None, None, f"nested more than {_MAX_DEPTH} levels deep", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        seen: dict[tuple, yaml.Node] = {}
        for key, _value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            first = seen.setdefault((key.tag, key.value), key)
            if first is not key:
                raise _Refused(
                    None,
                    None,
                    f"the key `{key.value}` is given twice in this mapping (first on line {first.start_mark.line + 1})",
                    key.start_mark,
                )
        return node

    def _expand(self, node: yaml.Node, alias: yaml.AliasEvent) -> None:
        if node.end_mark is None:  # still being read: the alias is inside the value it names
            raise _Refused(None, None, f"the alias `*{alias.anchor}` is inside the value it names", alias.start_mark)
        values, levels = self._measure(node)
        if self._depth + levels > _MAX_DEPTH:
            problem = f"nested more than {_MAX_DEPTH} levels deep once the alias `*{alias.anchor}` is expanded"
            raise _Refused(None, None, problem, alias.start_mark)
        self._aliased += values
        if self._aliased > _MAX_ALIASED:
            problem = f"the aliases stand for more than {_MAX_ALIASED:,} values in all"
            raise _Refused(None, None, problem, alias.start_mark)

    def _measure(self, node: yaml.Node) -> tuple[int, int]:
        """The values a node stands for and the levels it nests, its aliases expanded. Each alias
        was measured as it was read, so this walks no deeper than the text itself nests."""
        found = self._measured.get(id(node))
        if found is None:
            if isinstance(node, yaml.ScalarNode):
                found = (1, 1)
            else:
                items = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
                inner = [self._measure(item) for item in items]
                found = (1 + sum(v for v, _ in inner), 1 + max((n for _, n in inner), default=0))
            self._measured[id(node)] = found
        return found


def _timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode):
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


def _mapping(loader: _Loader, node: yaml.MappingNode):
    data: dict = {}
    yield data
    data.update(loader.construct_mapping(node))
    # The nodes are flattened now: a key a `<<` merge brings in points where it is written in the
    # merged mapping, and a key given after the merge overrides it here as in `data`.
    where = _Where(_position(node.start_mark))
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)  # already built: the cached object
        where.keys[key] = _position(key_node.start_mark)
        where.values[key] = _position(value_node.start_mark)
    loader.positions.add(data, where)


def _sequence(loader: _Loader, node: yaml.SequenceNode):
    data: list = []
    yield data
    data.extend(loader.construct_sequence(node))
    loader.positions.add(data, _Where(_position(node.start_mark), items=[_position(n.start_mark) for n in node.value]))


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)
_Loader.add_constructor("tag:yaml.org,2002:map", _mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _sequence)


def _position(mark) -> Position:
    return (mark.line + 1, mark.column + 1)


@dataclass
class _Where:
    """Where a mapping or list starts in the tests file, and where its keys, values or items start."""

    start: Position
    keys: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)
    items: list = field(default_factory=list)


class _Positions:
    """Where the mappings and lists of a tests file were written, looked up by the objects read.

    Each object is kept with its entry, so its id is not reused while the table lives. A mapping
    an alias names is the anchored one: it points where the anchor is written."""

    def __init__(self):
        self._table: dict[int, tuple[object, _Where]] = {}

    def add(self, obj, where: _Where) -> None:
        self._table[id(obj)] = (obj, where)

    def _get(self, obj) -> _Where | None:
        found = self._table.get(id(obj)) if isinstance(obj, (dict, list)) else None
        return found[1] if found is not None and found[0] is obj else None

    def of(self, obj) -> Position | None:
        """Where a mapping or list starts."""
        where = self._get(obj)
        return where.start if where is not None else None

    def key(self, mapping, key) -> Position | None:
        """Where a key of a mapping is written; where the mapping starts, if it lacks the key."""
        where = self._get(mapping)
        if where is None:
            return None
        return where.keys.get(key, where.start)

    def value(self, mapping, key) -> Position | None:
        """Where a key's value is written; where the mapping starts, if it lacks the key."""
        where = self._get(mapping)
        if where is None:
            return None
        return where.values.get(key, where.start)

    def item(self, seq, index: int) -> Position | None:
        """Where an item of a list is written."""
        where = self._get(seq)
        if where is None:
            return None
        return where.items[index] if 0 <= index < len(where.items) else where.start


class _Bad(Exception):
    """A problem with one case, found while reading it, and where in the file it is."""

    def __init__(self, problem: str, at: Position | None = None):
        super().__init__(problem)
        self.at = at


def _read_case(raw, index: int, path: Path, defaults: dict, claim_files: dict, positions: _Positions) -> Case:
    if not isinstance(raw, dict):
        problem = f"expected a mapping with name, claim and expect, got {_kind(raw)}"
        return Case(index, "", problem=problem, file=str(path))
    name = raw.get("name")
    case = Case(index, name.strip() if isinstance(name, str) else "", file=str(path))
    try:
        unknown = [k for k in raw if k not in _CASE_KEYS]
        if unknown:
            raise _Bad(
                f"unknown key `{unknown[0]}` (a case has {', '.join(_CASE_KEYS)})", positions.key(raw, unknown[0])
            )
        if not isinstance(name, str) or not name.strip():
            raise _Bad("`name` is missing or not a string", positions.value(raw, "name"))
        if ("claim" in raw) == ("claim_file" in raw):
            # Both given: point at the second; neither: at the case.
            given = [positions.key(raw, k) for k in ("claim", "claim_file") if k in raw]
            second = max((at for at in given if at is not None), default=None)
            raise _Bad("give exactly one of `claim` (inline) and `claim_file`", second or positions.of(raw))
        case.as_of = _read_date(raw.get("as_of"), "as_of", positions.value(raw, "as_of"))
        case.known_at = _read_date(raw.get("known_at"), "known_at", positions.value(raw, "known_at"))
        if "expect" not in raw:
            raise _Bad("`expect` is missing", positions.of(raw))
        case.expect = _read_expect(raw["expect"], positions.value(raw, "expect"), positions)
        if "claim" in raw:
            case.claim = _inline_claim(raw["claim"], defaults, case.name, positions.value(raw, "claim"), positions)
        else:
            case.source = str(raw["claim_file"])
            case.claim = _claim_from_file(raw["claim_file"], path, claim_files, positions.value(raw, "claim_file"))
    except _Bad as err:
        case.problem = str(err)
        case.problem_at = err.at
    return case


def _read_date(value, key: str, at: Position | None) -> datetime.date | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        raise _Bad(f"`{key}` must be a date (YYYY-MM-DD), not a date and time", at)
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    raise _Bad(f"`{key}`: `{value}` is not a date (YYYY-MM-DD)", at)


def _read_expect(raw, at: Position | None, positions: _Positions) -> list[LineExpectation] | ClaimErrorExpectation:
    if isinstance(raw, dict):
        if raw.get("outcome") != "error" or set(raw) - {"outcome", "message"}:
            raise _Bad(
                "`expect` is a list of line expectations, or `{outcome: error, message: ...}` for a claim error", at
            )
        message = raw.get("message")
        if message is not None and not isinstance(message, str):
            raise _Bad("`expect.message` must be a string", positions.value(raw, "message"))
        return ClaimErrorExpectation(message, at)
    if not isinstance(raw, list) or not raw:
        raise _Bad(f"`expect` must be a non-empty list of line expectations, got {_kind(raw)}", at)
    out: list[LineExpectation] = []
    seen: set[int] = set()
    for i, item in enumerate(raw):
        where = f"expect[{i}]"
        item_at = positions.item(raw, i)
        if not isinstance(item, dict):
            raise _Bad(f"{where}: expected a mapping like {{seq: 1, outcome: covered}}, got {_kind(item)}", item_at)
        unknown = [k for k in item if k not in _EXPECT_KEYS]
        if unknown:
            problem = f"{where}: unknown key `{unknown[0]}` (expected {', '.join(_EXPECT_KEYS)})"
            raise _Bad(problem, positions.key(item, unknown[0]))
        seq = item.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise _Bad(
                f"{where}.seq: expected the line's seq (an integer), got {_kind(seq)}", positions.value(item, "seq")
            )
        if seq in seen:
            raise _Bad(f"{where}: line {seq} is expected twice", positions.value(item, "seq"))
        seen.add(seq)
        outcome = item.get("outcome")
        if outcome not in OUTCOMES:
            raise _Bad(
                f"{where}.outcome: `{outcome}` is not one of {', '.join(OUTCOMES)}", positions.value(item, "outcome")
            )
        for key, belongs in _KEY_OUTCOME.items():
            if key in item and outcome != belongs:
                raise _Bad(f"{where}: `{key}` goes with outcome {belongs}, not {outcome}", positions.key(item, key))
        category = item.get("category")
        if category is not None and category not in CATEGORIES:
            raise _Bad(
                f"{where}.category: `{category}` is not one of {', '.join(CATEGORIES)}",
                positions.value(item, "category"),
            )
        refer_to = item.get("refer_to")
        if refer_to is not None and not isinstance(refer_to, str):
            raise _Bad(f"{where}.refer_to: expected a string", positions.value(item, "refer_to"))
        missing = item.get("missing")
        if missing is not None:
            if not isinstance(missing, list) or not all(isinstance(m, str) for m in missing):
                raise _Bad(f"{where}.missing: expected a list of fact names", positions.value(item, "missing"))
            missing = tuple(missing)
        rules = item.get("rule", ())
        if isinstance(rules, str):
            rules = (rules,)
        if not isinstance(rules, (list, tuple)) or not all(isinstance(r, str) for r in rules):
            raise _Bad(f"{where}.rule: expected a rule id or a list of them", positions.value(item, "rule"))
        message = item.get("message")
        if message is not None and not isinstance(message, str):
            raise _Bad(f"{where}.message: expected a string", positions.value(item, "message"))
        units = {}
        for key in ("allowed_units", "denied_units"):
            value = item.get(key)
            # `.nan` and `.inf` read as floats, but no line is paid in them: `.nan` would never compare equal.
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf
            ):
                raise _Bad(f"{where}.{key}: expected a number of units", positions.value(item, key))
            units[key] = value
        expectation = LineExpectation(
            seq, outcome, category, refer_to, missing, tuple(rules), message, **units, at=item_at
        )
        out.append(expectation)
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


def _inline_claim(raw, defaults: dict, name: str, at: Position | None, positions: _Positions) -> dict:
    if not isinstance(raw, dict):
        raise _Bad(f"`claim` must be a mapping (a claim per docs/claims-contract.md), got {_kind(raw)}", at)
    claim = _deep_merge(defaults, raw)
    line_defaults = claim.pop("line", None) or {}
    if not isinstance(line_defaults, dict):
        raise _Bad("`claim.line` must be a mapping of line fields", positions.value(raw, "line"))
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


def _claim_from_file(ref, path: Path, cache: dict, at: Position | None) -> dict:
    if not isinstance(ref, str) or not ref.strip() or "\0" in ref:  # NUL: as for `policy`
        raise _Bad("`claim_file` must be a file name, e.g. claims.jsonl#claim-id", at)
    file_part, _, claim_id = ref.partition("#")
    file = (path.parent / file_part).resolve()
    if file not in cache:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise _Bad(
                f"claim_file `{file_part}`: cannot read it ({getattr(err, 'strerror', None) or err})", at
            ) from None
        if file.suffix == ".jsonl":
            claims = []
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    claims.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise _Bad(f"claim_file `{file_part}`, line {number}: not valid JSON ({err.msg})", at) from None
            cache[file] = {"jsonl": claims}
        else:
            try:
                cache[file] = {"json": json.loads(text)}
            except json.JSONDecodeError as err:
                raise _Bad(f"claim_file `{file_part}`: not valid JSON ({err.msg}, line {err.lineno})", at) from None
    found = cache[file]
    if "json" in found:
        if claim_id:
            raise _Bad(f"claim_file `{ref}`: `#id` picks a claim from a .jsonl file; a .json file is one claim", at)
        return found["json"]
    claims = found["jsonl"]
    if not claim_id:
        if len(claims) == 1:
            return claims[0]
        raise _Bad(f"claim_file `{ref}`: name the claim, e.g. `{file_part}#claim-id` ({len(claims)} claims)", at)
    for claim in claims:
        if isinstance(claim, dict) and claim.get("id") == claim_id:
            return claim
    raise _Bad(f"claim_file `{ref}`: no claim with id `{claim_id}`", at)


def _units_words(allowed, denied) -> str:
    parts = []
    if allowed is not None:
        parts.append(f"{allowed:g} units allowed")
    if denied is not None:
        parts.append(f"{denied:g} denied")
    return ", ".join(parts)


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
