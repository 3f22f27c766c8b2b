"""The `medpol test` and `medpol new` commands: run policy tests files, scaffold a new policy.

The main group (medpol.cli.main) imports this module when one of them is asked for.
Exit codes of `test`: 0 when every case passed (and coverage met --min-coverage), 1 when a
case failed or coverage fell short, 2 for usage errors (a path or tests file that cannot be used).
"""

from __future__ import annotations

import datetime
import math
import os
import sys
from pathlib import Path

import click

from medpol.authoring import scaffold
from medpol.authoring.policytests.load import TESTS_SUFFIX, TestFileError, load_tests
from medpol.authoring.policytests.run import Runner, format_failure
from medpol.paths import files_under


def _shown(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _percent(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    # FloatRange lets `nan` through (it compares false with both ends); every coverage would meet it.
    if value is not None and math.isnan(value):
        raise click.BadParameter("`nan` is not a percentage", ctx, param)
    return value


@click.command("test")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--coverage", "show_coverage", is_flag=True, help="Report the rules, criteria and codes the cases exercise."
)
@click.option(
    "--min-coverage",
    type=click.FloatRange(0, 100),
    default=None,
    metavar="N",
    callback=_percent,
    help="Fail when less than N percent of a policy's criteria were seen both true and false.",
)
def test_cmd(paths: tuple[str, ...], show_coverage: bool, min_coverage: float | None) -> None:
    """Run policy tests: PATH is a tests file or a folder searched for *.tests.yaml.

    Each case decides a claim under the policy the file names and compares the lines with
    the expected outcomes; a failing case shows its first difference and the explanation tree.
    The last line is always `N passed, M failed`.
    """
    files = files_under(paths, f"*{TESTS_SUFFIX}")
    if not files:
        raise click.UsageError(f"no *{TESTS_SUFFIX} files in {', '.join(paths)}")
    loaded, problems = [], []
    for file in files:
        try:
            loaded.append(load_tests(file))
        except TestFileError as err:
            problems.append(str(err))
    if problems:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(2)

    runner = Runner()
    passed = failed = 0
    for tests in loaded:
        result = runner.run(tests)
        if result.policy_problem:
            click.echo(result.policy_problem)
        for case in result.results:
            for warning in case.warnings:
                click.echo(f"warning: {case.case.heading()}: {warning}")
            if not case.passed:
                click.echo(format_failure(case))
                click.echo("")
        click.echo(f"{_shown(tests.path)}: {result.passed} passed, {result.failed} failed")
        passed += result.passed
        failed += result.failed

    short = []
    if show_coverage or min_coverage is not None:
        for coverage in runner.coverage.values():
            click.echo("")
            click.echo(coverage.report() if show_coverage else f"{coverage.policy_id}: {coverage.summary()}")
            if min_coverage is not None and coverage.percent < min_coverage:
                short.append(coverage)
    for coverage in short:
        click.echo(
            f"coverage of {coverage.policy_id} is {coverage.percent:.1f}%, below --min-coverage {min_coverage:g}"
        )
    click.echo(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or short else 0)


@click.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    default="policies",
    show_default=True,
    type=click.Path(file_okay=False),
    help="The folder to write NAME.policy and NAME.tests.yaml in.",
)
def new_cmd(name: str, directory: str) -> None:
    """Scaffold NAME.policy and NAME.tests.yaml: a valid policy to start from, with passing tests.

    NAME is lowercase words joined by dashes, e.g. `insulin-infusion-pump`. Existing files
    are never overwritten.
    """
    try:
        created = scaffold.create(name, Path(directory), datetime.date.today())
    except scaffold.ScaffoldError as err:
        raise click.UsageError(str(err)) from None
    for path in created:
        click.echo(f"created {_shown(path)}")
    click.echo(
        f"next: edit the policy, then run `medpol check {_shown(created[0])}` and `medpol test {_shown(created[1])}`"
    )
