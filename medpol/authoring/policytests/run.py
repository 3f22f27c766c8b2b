"""Run tests files: load each policy (and revision) once, decide every case with the compiled policy
and with the reference interpreter, compare, and gather coverage; and say a failing case for a person."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

from medpol.authoring.policytests.compare import _disagreement, differences
from medpol.authoring.policytests.coverage import PolicyCoverage, _Recorder
from medpol.authoring.policytests.load import Case, TestFile, _shown
from medpol.dsl.diagnostics import PolicyError


@dataclass
class CaseResult:
    case: Case
    passed: bool
    differences: list[str] = field(default_factory=list)
    explanation: str | None = None  # the explanation tree of a failing case
    # The decision's warnings: a claim field or fact the policy does not know, which is ignored.
    # In a case it is most likely misspelt, so it is shown even when the case passes.
    warnings: list[str] = field(default_factory=list)

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
        from medpol.history.revisions import RefError

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
        from medpol.engine.decide import Engine

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
                results.append(CaseResult(case, False, [f"{case.heading()}: {err}"]))
                continue
            results.append(self._run_case(case, policy, tests.policy_path))
        return FileResult(tests, results, problem)

    def _run_case(self, case: Case, policy, policy_path: Path) -> CaseResult:
        from medpol.engine.explain import render

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
        warnings = list(decision.get("warnings", ()))
        found = differences(case, decision)
        if not found:
            disagreement = _disagreement(case, decision, explained)
            if disagreement:
                found = [disagreement]
        if not found:
            return CaseResult(case, True, warnings=warnings)
        return CaseResult(case, False, found, render(explained, policy, case.as_of), warnings)


def format_failure(result: CaseResult, indent: str = "    ") -> str:
    """A failing case for a person: its first difference, how many more, and the explanation tree.
    Each difference starts `FILE:LINE:COL: case #N "name"`, at the expectation it breaks (or the case)."""
    lines = [f"FAILED {result.difference}"]
    more = len(result.differences) - 1
    if more > 0:
        lines.append(f"{indent}({more} more difference{'s' if more != 1 else ''} in this case)")
    if result.explanation:
        lines.extend(indent + text if text else "" for text in result.explanation.splitlines())
    return "\n".join(lines)
