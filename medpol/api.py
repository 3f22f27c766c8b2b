"""The Python API: load a policy (or a library of them) once, decide many claims.

policy = medpol.load_policy("policies/external-infusion-pump.policy")
decision = policy.decide(claim_dict)                      # as of each line's date
decision = policy.decide(claim_dict, as_of=date(2026, 1, 20))  # what-if
library = medpol.load_library(["policies"])               # every policy, routed by code
decision = library.decide(claim_dict)
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import gc
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from medpol.compiler.check import check
from medpol.compiler.decision import predicates_called
from medpol.compiler.generate import generate
from medpol.compiler.interpret import InterpretedPredicates
from medpol.compiler.link import link, references
from medpol.compiler.load import load
from medpol.compiler.passages import SourceDocument
from medpol.compiler.plan import UNKNOWN_SERVED
from medpol.compiler.reasons import build_reasons
from medpol.compiler.resolve import Model, resolve
from medpol.dsl import ir
from medpol.dsl.diagnostics import Diagnostic, PolicyError, not_utf8_at
from medpol.dsl.lower import read
from medpol.engine.decide import Engine


@contextlib.contextmanager
def batch_collection(young: int = 50_000):
    """Run the garbage collector's young generation less often while deciding a batch.

    A decision allocates hundreds of small dicts and lists that are freed by reference
    counting as soon as it is written, and hold no cycles; with the default threshold the
    collector would scan them every few hundred allocations, about a third of the time
    spent per claim.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(young, old[0]), old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)


class CompiledPolicy:
    """A checked, compiled policy, ready to decide claims."""

    def __init__(
        self, model: Model, python_source: str, predicates, document: SourceDocument | None, warnings: list[Diagnostic]
    ):
        self.model = model
        self.python_source = python_source
        self.warnings = warnings
        self.reasons = build_reasons(model, document)
        self.engine = Engine(model, predicates, self.reasons)
        self._interpreted: InterpretedPredicates | None = None
        self.label = model.policy.path  # the version it was loaded from, for reports
        self.document = document
        # Named criteria, which other policies of a library read (`meets NAME of ID`).
        self.criteria_functions = {
            key[1]: fn for key, fn in predicates.items() if isinstance(key, tuple) and key[0] == "criteria"
        }
        self._siblings: list[CompiledPolicy] = []  # policies read on its behalf when decided alone

    def __reduce__(self):
        # Generated code and its linecache entry live in one process: another process
        # (a worker, a Dask node) rebuilds the policy from its source, which is small.
        document = self.document.original if self.document is not None else None
        return (_rebuild, (self._text, self.model.policy.path, document, self.label, self._siblings, self.strict))

    def decisions_source(self, code: str | None = None) -> str:
        """The compiled decision of each kind of line of one code, as `medpol compile
        --show-python --code` prints them; with no code, of every code's lines, a base's
        only for a claim that does not say the item it serves (a base has one decision per
        item it serves: ask for its code to read them all)."""
        kinds = self.engine.planner.kinds()
        if code is not None:
            kinds = [k for k in kinds if k.code == code.upper()]
        else:
            kinds = [k for k in kinds if not k.base or k.subject == UNKNOWN_SERVED]
        return "\n\n".join(self.engine.decision_source(kind) for kind in sorted(kinds))

    def code_source(self, code: str) -> str:
        """One code's compiled decisions, then the predicates they call: the code's whole
        logic in one listing, as `medpol compile --show-python --code` prints it."""
        decisions = self.decisions_source(code)
        if not decisions:
            return ""
        called = predicates_called(decisions, self.python_source)
        heading = "# The predicates these decisions call, in the order of the policy's module."
        return f"{decisions}\n\n{heading}\n\n{called}\n"

    @property
    def strict(self) -> bool:
        """Whether a fact name the policy does not declare is an error rather than a warning."""
        return self.engine.facts.strict

    @strict.setter
    def strict(self, value: bool) -> None:
        self.engine.facts.strict = bool(value)

    def passage_text(self, text: str) -> str:
        """A quoted passage with the words left out by `...` restored from the source document."""
        from medpol.compiler.passages import normalize

        return self.document.expand(text) if self.document is not None else normalize(text)

    @property
    def id(self) -> str:
        return self.model.policy.id

    @property
    def ir(self) -> ir.Policy:
        return self.model.policy

    @property
    def revision(self) -> str | None:
        rev = self.model.policy.revision
        return rev.number if rev else None

    def decide(self, claim: Any, as_of: datetime.date | None = None, why_not: bool = False) -> dict:
        """Decide one claim (a decoded JSON object); never raises for a malformed claim.

        With `why_not`, each denied or pending line also says what would cover it
        (medpol.engine.whynot): the least fact values, one set per route to coverage.
        """
        decision = self.engine.decide(claim, as_of)
        if why_not:
            from medpol.engine.whynot import why_not as routes

            decision = routes(self, claim, decision, as_of)
        return decision

    def decide_many(self, claims: Iterable[Any], as_of: datetime.date | None = None) -> Iterator[dict]:
        """Decide claims one after another, in order; faster per claim than `decide` in a loop."""
        decide = self.engine.decide
        with batch_collection():
            for claim in claims:
                yield decide(claim, as_of)

    def interpreted(self) -> Engine:
        """An engine over the reference interpreter, tracing every rule it evaluates."""
        if self._interpreted is None:
            self._interpreted = InterpretedPredicates(self.model)
        engine = Engine(self.model, self._interpreted, self.reasons, tracer=self._interpreted)
        engine.library = self.engine.library  # other policies' criteria are read as when compiled
        engine.facts = self.engine.facts
        return engine

    def explain(self, claim: Any, as_of: datetime.date | None = None) -> dict:
        """Decide with the interpreter and keep, per line, the trace of every rule tried."""
        return self.interpreted().decide(claim, as_of)


def _source_document(policy: ir.Policy, read_source=None) -> tuple[SourceDocument | None, str | None]:
    if not policy.source:
        return None, None
    base = os.path.dirname(policy.path) if policy.path and not policy.path.startswith("<") else "."
    doc_path = os.path.join(base, policy.source)
    if read_source is not None:
        # A version from git reads the source document as committed beside it.
        text = read_source(policy.source)
        return (SourceDocument(text) if text is not None else None), doc_path
    try:
        # A regular file only: a device (/dev/zero) would be read for ever, a pipe waited on.
        if not os.path.isfile(doc_path):
            return None, doc_path
        with open(doc_path, encoding="utf-8") as fh:
            return SourceDocument(fh.read()), doc_path
    except (OSError, ValueError):
        # Unreadable, not UTF-8, or not a usable file name: the checker reports it.
        return None, doc_path


def _rebuild(text: str, path: str, document: str | None, label: str, siblings=(), strict=False) -> CompiledPolicy:
    compiled = compile_text(text, path, read_source=(lambda _name: document) if document is not None else None)
    compiled.label = label
    compiled.strict = strict
    if siblings:
        from medpol.engine.library import link_alone

        link_alone(compiled, list(siblings))
    return compiled


def compile_text(text: str, path: str = "<policy>", *, read_source=None) -> CompiledPolicy:
    """Run the whole pipeline on a policy's text: parse, lower, resolve, check, generate, load."""
    policy = read(text, path)
    model = resolve(policy)
    document, doc_path = _source_document(policy, read_source)
    diagnostics = check(model, document, doc_path)
    # Criteria that read each other in a cycle would recurse for ever when a claim is
    # decided: the library's linker finds them, here among the policy's own criteria
    # (the policies it reads are linked, and checked, when they are loaded beside it).
    others = frozenset(r.policy for r in references(model))
    diagnostics += [d for d in link([model], others) if d.code == "reference-cycle"]
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        raise PolicyError(diagnostics, {path: text})
    python_source, data = generate(model)
    predicates = load(python_source, data, path)
    compiled = CompiledPolicy(
        model, python_source, predicates, document, [d for d in diagnostics if d.severity != "error"]
    )
    compiled._text = text
    return compiled


def load_policy(path: str | os.PathLike, known_at: datetime.date | None = None, linked: bool = True) -> CompiledPolicy:
    """Read and compile a policy file or a reference to a version of one (`path@r21`,
    `path@2025-12-20`, `path@<commit>`); with `known_at`, the revision published on that day.

    A policy that reads another policy's criteria (`meets NAME of ID`) is linked to the
    policies beside it in its folder (at the same version), unless `linked` is false.
    Raises PolicyError with every diagnostic, or RefError for a reference that names no version.
    """
    path = str(path)
    if known_at is not None or ("@" in path and not Path(path).exists()):
        from medpol.history.revisions import resolve as resolve_ref
        from medpol.history.revisions import split_ref

        version = resolve_ref(path, known_at)
        compiled = compile_text(version.text, version.path, read_source=version.source_reader)
        compiled.label = version.label
        ref = split_ref(path)[2] or None
    else:
        try:
            raw = Path(path).read_bytes()
        except OSError as err:
            raise PolicyError([Diagnostic(path, 1, 1, "unreadable-file", f"cannot read the file: {err}")]) from None
        compiled = compile_text(policy_text(raw, path), path)
        ref = None
    if linked:
        from medpol.engine.library import siblings_for

        siblings_for(compiled, known_at, ref)
    return compiled


def load_library(paths, known_at: datetime.date | None = None):
    """Compile every policy under `paths` (folders or files) into one library (medpol.engine.library)."""
    from medpol.engine.library import load_library as load

    return load(paths, known_at)


@functools.lru_cache(maxsize=32)
def resolved(text: str, path: str) -> Model:
    """A policy's text parsed, lowered and resolved; raises PolicyError for a text that does not read.

    The models of the texts last read are kept: checking a policy and then its library reads
    the same text twice, and an editor checks a library again at every change of one file.
    A model is shared: callers read it and never change it.
    """
    return resolve(read(text, path))


def check_text(text: str, path: str = "<policy>") -> list[Diagnostic]:
    """Every problem in a policy's text: syntax, names, types, codes, windows, quotations."""
    try:
        model = resolved(text, path)
    except PolicyError as err:
        return err.diagnostics
    document, doc_path = _source_document(model.policy)
    return check(model, document, doc_path)


def check_file(path: str) -> tuple[list[Diagnostic], str | None]:
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        return [Diagnostic(path, 1, 1, "unreadable-file", f"cannot read the file: {err}")], None
    try:
        text = policy_text(raw, path)
    except PolicyError as err:
        return err.diagnostics, err.sources.get(path)
    return check_text(text, path), text


def policy_text(raw: bytes, path: str) -> str:
    """A policy file's text, from its bytes (in the working tree or as committed). Bytes that
    are not UTF-8 are an `unreadable-file` error at the first of them, shown under its line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line, column = not_utf8_at(raw, err)
        problem = Diagnostic(
            path,
            line,
            column,
            "unreadable-file",
            f"the file is not UTF-8 text: byte 0x{raw[err.start]:02x}",
            help="save the file as UTF-8",
        )
        raise PolicyError([problem], {path: raw.decode("utf-8", errors="replace")}) from None
