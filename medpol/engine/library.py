"""A library of policies: each claim line decided by every policy that governs its code.

A health plan's policy team keeps many policies and a claims system sends every claim to
all of them. The library is built once: each policy is compiled, the references between
policies are linked (medpol.compiler.link), and an index maps each HCPCS code to the policies
that govern it, so a claim is decided only by the policies its lines name, whatever the
size of the library.

How a line is decided across the library:

1. each policy that governs the line's code decides it as it would alone;
2. a referral to a policy of the library (`refer S to policy ID`) is decided by that
   policy, and the line keeps the path (`path`: the referring policies' decisions);
3. where several policies decide a line, its outcome is the most restrictive, by the same
   precedence a policy uses (`LIBRARY_PRECEDENCE`), unless the library's `library.toml`
   gives another; the line carries every policy's decision (`decisions`) and reasons.
"""

from __future__ import annotations

import datetime
import os
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from medpol.compiler.link import link, references
from medpol.compiler.words import outcome_words
from medpol.dsl.diagnostics import Diagnostic, PolicyError, not_utf8_at, position_after
from medpol.engine.claims import ClaimError, LineError, read_claim
from medpol.engine.errors import error_decision, line_error

# Outcomes from the most restrictive to the least: a referral out of the library first,
# then denials (by category, as a policy's default precedence orders them), a line paid
# in part, a line that cannot yet be decided, and coverage.
LIBRARY_PRECEDENCE = (
    "error",
    "refer",
    "denied as not covered",
    "denied as incorrect coding",
    "denied as not reasonable and necessary",
    "covered in part",
    "pending",
    "covered",
)
_HEADER = re.compile(r"^policy\s+([a-z][a-z0-9]*(?:-[a-z0-9]+)*)\b", re.MULTILINE)


def policy_id_of(path: str | os.PathLike) -> str | None:
    """The id a policy file declares, read from its header without compiling it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    found = _HEADER.search(text)
    return found.group(1) if found else None


class Library:
    """Compiled policies with an index from code to the policies that govern it."""

    id = None  # a library decision names its policies line by line
    revision = None

    def __init__(self, policies: Iterable, name: str = "library", precedence: tuple[str, ...] | None = None):
        self.name = name
        self.policies: dict[str, Any] = {}
        for policy in sorted(policies, key=lambda p: p.id):
            self.policies.setdefault(policy.id, policy)
        self.precedence = tuple(precedence or LIBRARY_PRECEDENCE)
        self._rank = {words: i for i, words in enumerate(self.precedence)}
        index: dict[str, list] = {}
        for policy in self.policies.values():
            for code in policy.model.governed:
                index.setdefault(code, []).append(policy)
        self.index = {code: tuple(found) for code, found in index.items()}
        # Which referral rules end in another policy of the library.
        self.referrals = {
            (policy.id, rule.id): rule.refer_policy
            for policy in self.policies.values()
            for rule in policy.model.rules
            if rule.refer_policy is not None and rule.refer_policy in self.policies
        }
        every_fact = frozenset(name for p in self.policies.values() for name in p.model.facts)
        for policy in self.policies.values():
            policy.engine.library = self
            reader = policy.engine.facts
            reader.elsewhere = every_fact
            reader.scope = "any policy in the library"

    def __reduce__(self):
        # Workers rebuild each policy from its text (CompiledPolicy.__reduce__), then relink.
        return (Library, (list(self.policies.values()), self.name, self.precedence))

    def __len__(self) -> int:
        return len(self.policies)

    @property
    def strict(self) -> bool:
        """Whether a fact name no policy of the library declares is an error."""
        return any(p.strict for p in self.policies.values())

    @strict.setter
    def strict(self, value: bool) -> None:
        for policy in self.policies.values():
            policy.strict = value

    @property
    def engine(self) -> Library:
        return self  # the batch runner asks `policy.engine.decide`

    # ------------------------------------------------------------ deciding

    def decide(self, raw: Any, as_of: datetime.date | None = None, why_not: bool = False) -> dict:
        """One claim in, one decision out: each line by the policies that govern its code.

        With `why_not`, each denied or pending line also says what would cover it.
        """
        decision = self._decide(raw, as_of, explain=False)
        if why_not:
            from medpol.engine.whynot import why_not as routes

            decision = routes(self, raw, decision, as_of)
        return decision

    def explain(self, raw: Any, as_of: datetime.date | None = None) -> dict:
        """Decide with each policy's interpreter, keeping the trace of every rule tried."""
        return self._decide(raw, as_of, explain=True)

    def decide_many(self, claims: Iterable[Any], as_of: datetime.date | None = None) -> Iterator[dict]:
        from medpol.api import batch_collection

        with batch_collection():
            for claim in claims:
                yield self._decide(claim, as_of, explain=False)

    def _decide(self, raw: Any, as_of, explain: bool) -> dict:
        try:
            claim = read_claim(raw)
        except ClaimError as err:
            claim_id = err.claim_id
            if claim_id is None and isinstance(raw, dict) and isinstance(raw.get("id"), str):
                claim_id = raw["id"]
            return error_decision(claim_id, err.message, field=err.field)
        index = self.index
        deciding: list = []
        for line in claim.lines:
            for policy in index.get(line.hcpcs, ()) if line.hcpcs is not None else ():
                if policy not in deciding:
                    deciding.append(policy)
        decided: dict[str, dict] = {}

        def decision_of(policy) -> dict:
            found = decided.get(policy.id)
            if found is None:
                if explain:
                    found = policy.interpreted().decide_claim(claim, as_of)
                else:
                    found = policy.engine.decide_claim(claim, as_of)
                decided[policy.id] = found
            return found

        warnings: list[str] = []
        for policy in deciding:
            decision = decision_of(policy)
            if decision.get("outcome") == "error":
                # A fact the claim carries does not fit the policy that reads it.
                return {**decision, "claim": claim.id}
            for warning in decision.get("warnings", ()):
                if warning not in warnings:
                    warnings.append(warning)
        lines = []
        if len(deciding) == 1 and not self.referrals:
            # The common case: one policy governs the claim's lines. Its line decisions
            # are this claim's own, so they are marked in place rather than copied.
            policy = deciding[0]
            pid, revision = policy.id, policy.revision
            for verdict in decided[pid]["lines"]:
                if verdict["outcome"] != "not_applicable":
                    verdict["policy"] = pid
                    verdict["revision"] = revision
                lines.append(verdict)
            claim_lines = ()
        else:
            claim_lines = claim.lines
        for i, line in enumerate(claim_lines):
            verdicts = []
            for policy in deciding:
                verdict = decision_of(policy)["lines"][i]
                if verdict["outcome"] != "not_applicable":
                    verdicts.append(self._follow_referral(policy, verdict, i, decision_of))
            lines.append(self._line(line, verdicts))
        out = {"claim": claim.id, "lines": lines}
        if not deciding and claim.ignored_fields:
            warnings = [f"`{f}` is not a field of a claim and was ignored" for f in claim.ignored_fields]
        if warnings:
            out["warnings"] = warnings
        return out

    def _follow_referral(self, policy, verdict: dict, i: int, decision_of) -> tuple:
        """(policy, its line decision, the referrals that led there), referrals followed."""
        path: list[dict] = []
        seen = {policy.id}
        while verdict["outcome"] == "refer":
            reasons = verdict.get("reasons") or ()
            target_id = self.referrals.get((policy.id, reasons[0]["rule"])) if reasons else None
            if target_id is None or target_id in seen:
                break
            target = self.policies[target_id]
            answer = decision_of(target)["lines"][i]
            if answer["outcome"] == "not_applicable":
                break  # the policy referred to does not decide this code: the referral stands
            path.append(_tagged(policy, verdict))
            policy, verdict = target, answer
            seen.add(target_id)
        return policy, verdict, path

    def _line(self, line, verdicts: list[tuple]) -> dict:
        if not verdicts:
            if isinstance(line, LineError) and line.hcpcs is None:
                return line_error(line.seq, None, line.field, line.message)
            return {"seq": line.seq, "hcpcs": line.hcpcs, "outcome": "not_applicable"}
        # One decision per policy: a policy reached by a referral and also governing the
        # code directly decided the line once; the referral keeps its path.
        by_policy: dict[str, tuple] = {}
        for policy, verdict, path in verdicts:
            if policy.id not in by_policy or path:
                by_policy[policy.id] = (policy, verdict, path)
        ranked = sorted(by_policy.values(), key=lambda v: self._rank.get(outcome_words(v[1]), len(self._rank)))
        policy, verdict, path = ranked[0]
        out = dict(verdict)
        out.update(policy=policy.id, revision=policy.revision)
        if path:
            out["path"] = path
        if len(ranked) > 1:
            if out["outcome"] == "pending":
                missing: list[str] = []
                for _, other, _ in ranked:
                    for name in other.get("missing", ()):
                        if name not in missing:
                            missing.append(name)
                out["missing"] = sorted(missing)
            reasons = []
            for p, other, _ in ranked:
                reasons.extend({**reason, "policy": p.id} for reason in other.get("reasons", ()))
            if reasons:
                out["reasons"] = reasons
            out["decisions"] = [_tagged(p, other, route) for p, other, route in ranked]
        return out


def _tagged(policy, verdict: dict, path: list | None = None) -> dict:
    out = {"policy": policy.id, "revision": policy.revision}
    out.update((k, v) for k, v in verdict.items() if k not in ("seq", "hcpcs"))
    if path:
        out["path"] = path
    return out


# ---------------------------------------------------------------- loading


def read_settings(folder: Path) -> tuple[dict, list[Diagnostic], str | None]:
    """The library's own settings (`library.toml` beside its policies), if it has any, their
    problems, and the text the problems point into."""
    return _read_settings(folder / "library.toml")


_SETTINGS = ("name", "precedence")
# tomllib ends each message with where it stopped, in one of these two forms.
_TOML_AT = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")
_TOML_KEY = r"\"(?:[^\"\\\n]|\\.)*\"|'[^'\n]*'|[A-Za-z0-9_-]+"
_KEY_LINE = re.compile(rf"[ \t]*({_TOML_KEY})[ \t]*[.=]")
_TABLE_LINE = re.compile(rf"[ \t]*\[\[?[ \t]*({_TOML_KEY})[ \t]*[.\]]")


def _read_settings(path: Path) -> tuple[dict, list[Diagnostic], str | None]:
    """The settings in `path`, their problems, and the text the problems point into."""
    if not path.is_file():
        return {}, [], None
    shown = str(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        return {}, [Diagnostic(shown, 1, 1, "bad-library-settings", f"cannot read the settings: {err}")], None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line, column = not_utf8_at(data, err)
        problem = Diagnostic(shown, line, column, "bad-library-settings", f"cannot read the settings: {err}")
        return {}, [problem], data.decode("utf-8", errors="replace")
    try:
        settings = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        line, column, message = _toml_error(err, text)
        problem = Diagnostic(shown, line, column, "bad-library-settings", f"cannot read the settings: {message}")
        return {}, [problem], text
    problems: list[Diagnostic] = []

    def at_key(key: str, message: str, help: str | None = None) -> None:
        line, column, width = _key_position(text, key)
        problems.append(Diagnostic(shown, line, column, "bad-library-settings", message, width=width, help=help))

    # A setting that does not hold is dropped: a caller that goes on uses the default.
    for key in settings:
        if key not in _SETTINGS:
            at_key(key, f"`{key}` is not a setting", help="settings: " + ", ".join(_SETTINGS))
    name = settings.get("name")
    if name is not None and not isinstance(name, str):
        at_key("name", "`name` must be a string")
        del settings["name"]
    precedence = settings.get("precedence")
    if precedence is not None:
        if not isinstance(precedence, list) or sorted(map(str, precedence)) != sorted(LIBRARY_PRECEDENCE):
            at_key(
                "precedence",
                "`precedence` must order every outcome once: " + ", ".join(f'"{w}"' for w in LIBRARY_PRECEDENCE),
            )
            del settings["precedence"]
    return settings, sorted(problems), text


def _toml_error(err: tomllib.TOMLDecodeError, text: str) -> tuple[int, int, str]:
    """Where tomllib stopped, as line and column, and its message without the position.

    Its message is the only place tomllib gives the position on every Python medpol supports.
    """
    message = str(err)
    found = _TOML_AT.search(message)
    if found is None:
        return 1, 1, message
    message = message[: found.start()]
    if message[1:2].islower():
        message = message[0].lower() + message[1:]  # messages start in lower case
    if found.group(1) is not None:
        return int(found.group(1)), int(found.group(2)), message
    # At the end of the document: just past its last character, as a policy's early end is shown.
    line, column = position_after(text.rstrip())
    return line, column, message


def _key_position(text: str, key: str) -> tuple[int, int, int]:
    """The line, column and width of the top-level `key` where the settings file sets it.

    tomllib keeps no positions, so the file's lines are read for it: the key starts a line
    before any table (`key = ...`, `key.part = ...`), or is the first name of a table
    (`[key]`, `[key.part]`, `[[key]]`). A line counts only where the lines before it read as
    TOML on their own: a line inside a multi-line string or array is not a key's.
    """
    lines = text.split("\n")
    in_root = True
    for number, line in enumerate(lines):
        table = _TABLE_LINE.match(line)
        found = table or (_KEY_LINE.match(line) if in_root else None)
        if found is None or not _reads("\n".join(lines[:number])):
            continue
        if table is not None:
            in_root = False  # the keys that follow are the table's
        if _key_name(found.group(1)) == key:
            return number + 1, found.start(1) + 1, len(found.group(1))
    return 1, 1, 1


def _reads(text: str) -> bool:
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    return True


def _key_name(written: str) -> str:
    """A key as written (bare or quoted) as the name tomllib gives it."""
    if written[0] not in "\"'":
        return written
    try:
        return next(iter(tomllib.loads(f"{written} = 0")))
    except tomllib.TOMLDecodeError:
        return written


def _settings_text(path: Path) -> str | None:
    """A settings file's text, to show under its problems."""
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError:
        return None


def load_library(paths: Iterable[str | os.PathLike], known_at: datetime.date | None = None, warn=None) -> Library:
    """Compile every policy under `paths` (folders or files) into one library.

    With `known_at`, each policy is the revision published by that day; a policy with no
    revision published by then is left out, and `warn` is told why. Raises PolicyError
    with every diagnostic of every policy and of the links between them.
    """
    from medpol.api import load_policy
    from medpol.history.revisions import RefError
    from medpol.paths import files_under

    warn = warn or (lambda message: print(message, file=sys.stderr))
    paths = [str(p) for p in paths]
    files = files_under(tuple(paths), "*.policy")
    folders = [Path(p) for p in paths if Path(p).is_dir()]
    settings: dict = {}
    diagnostics: list[Diagnostic] = []
    sources: dict[str, str] = {}
    if len(folders) == 1:
        settings_path = folders[0] / "library.toml"
        settings, diagnostics, settings_text = _read_settings(settings_path)
        if settings_text is not None:
            sources[str(settings_path)] = settings_text  # so its problems show the line, with a caret
    compiled = []
    for file in files:
        try:
            compiled.append(load_policy(file, known_at, linked=False))
        except RefError as err:
            warn(f"{file}: left out of the library: {err}")
        except PolicyError as err:
            diagnostics.extend(err.diagnostics)
            sources.update(err.sources)
    if not files:
        raise PolicyError([Diagnostic(", ".join(paths), 1, 1, "no-policies", "no .policy files found")])
    diagnostics.extend(link([c.model for c in compiled]))
    if any(d.severity == "error" for d in diagnostics):
        for c in compiled:
            sources.setdefault(c.model.policy.path, c._text)
        raise PolicyError(diagnostics, sources)
    name = settings.get("name") or (folders[0].name if len(folders) == 1 else "library")
    return Library(compiled, name, tuple(settings["precedence"]) if "precedence" in settings else None)


def siblings_for(compiled, known_at: datetime.date | None, ref: str | None) -> Library | None:
    """The policies a policy's references reach, loaded from the folder it sits in.

    A policy decided on its own still reads other policies' criteria; it does not follow
    its referrals, which are its own decision.
    """
    from medpol.api import load_policy

    wanted = {r.policy for r in references(compiled.model) if r.kind == "criteria"}
    if not wanted:
        return None
    folder = Path(compiled.model.policy.path).parent
    by_id = {}
    for file in sorted(folder.glob("*.policy")):
        pid = policy_id_of(file)
        if pid is not None and pid != compiled.id:
            by_id.setdefault(pid, file)
    found = [compiled]
    loaded = {compiled.id}
    while wanted - loaded:
        pid = sorted(wanted - loaded)[0]
        loaded.add(pid)
        file = by_id.get(pid)
        if file is None:
            continue
        other = None
        # The same version as the policy (a date, a commit), else the file as it stands.
        for spec in ([f"{file}@{ref}"] if ref else []) + [str(file)]:
            try:
                other = load_policy(spec, known_at, linked=False)
                break
            except Exception:  # noqa: BLE001, S112 - `medpol check` reports a policy that does not load
                continue
        if other is None:
            continue
        found.append(other)
        wanted |= {r.policy for r in references(other.model) if r.kind == "criteria"}
    return link_alone(compiled, found[1:])


def link_alone(compiled, others: list) -> Library | None:
    """Link a policy decided on its own to the policies whose criteria it reads."""
    if not others:
        return None
    library = Library([compiled, *others], "library")
    for policy in library.policies.values():
        policy.engine.facts.scope = "this policy"  # the facts the criteria read are known
    compiled._siblings = list(others)
    return library


def link_diagnostics(
    files: list, folders: Iterable = (), texts: dict[str, str] | None = None
) -> tuple[list[Diagnostic], set[tuple]]:
    """The problems between `files` and the rest of their library (the policies beside
    them in their folders), reported for `files` only; and each folder's settings.

    Also the policy's own warnings that the library answers: criteria no rule of their
    policy uses but another policy reads, as (path, code, message). `texts` gives the text
    of a policy by its path where it is not the file's (a policy being edited).
    """
    from medpol.api import resolved

    texts = texts or {}
    given = {str(f) for f in files}
    members = set(given)
    for file in files:
        members.update(str(f) for f in Path(file).parent.glob("*.policy"))
    models = []
    unreadable: set[str] = set()
    for path in sorted(members):
        try:
            text = texts[path] if path in texts else Path(path).read_text(encoding="utf-8")
            models.append(resolved(text, path))
        except (PolicyError, OSError, UnicodeDecodeError):
            pid = _id_in(texts[path]) if path in texts else policy_id_of(path)
            if pid is not None:
                unreadable.add(pid)  # its own diagnostics say why
    found = [d for d in link(models, frozenset(unreadable)) if d.path in given]
    for folder in folders:
        found.extend(read_settings(Path(folder))[1])
    paths = {m.policy.id: m.policy.path for m in models}
    read_elsewhere = {
        (paths[ref.policy], "unused-set", f"criteria `{ref.name}` is declared but no rule uses it")
        for m in models
        for ref in references(m)
        if ref.kind == "criteria" and ref.policy in paths
    }
    return found, read_elsewhere


def _id_in(text: str) -> str | None:
    found = _HEADER.search(text)
    return found.group(1) if found else None


def check_files(
    files: list, folders: Iterable = (), texts: dict[str, str] | None = None
) -> list[tuple[str, list[Diagnostic], str | None]]:
    """Every problem `medpol check` reports for `files`: each policy's own, then those
    between it and the rest of its library (the policies beside it in its folder).

    Returns (path, diagnostics, text) per file, in the order given, then one for each
    folder's library settings (`library.toml`) with problems, so that they are shown with
    their text as a policy's are. `texts` gives the text of a policy by its path where it
    is not the file's (a policy being edited): it is checked, and read by the library, as given.
    """
    from medpol.api import check_file, check_text

    texts = texts or {}
    found, read_elsewhere = link_diagnostics(files, folders, texts)
    linked: dict[str, list[Diagnostic]] = {}
    for d in found:
        linked.setdefault(d.path, []).append(d)
    checked = []
    for file in files:
        path = str(file)
        if path in texts:
            text: str | None = texts[path]
            diagnostics = check_text(text, path)
        else:
            diagnostics, text = check_file(path)
        diagnostics = [d for d in diagnostics if (d.path, d.code, d.message) not in read_elsewhere]
        checked.append((path, diagnostics + linked.pop(path, []), text))
    for path, diagnostics in linked.items():  # the library's settings
        checked.append((path, diagnostics, _settings_text(Path(path))))
    return checked
