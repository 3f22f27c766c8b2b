"""Scaffold a new policy: a valid NAME.policy to start from and NAME.tests.yaml with cases that pass."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

# The language's policy id (dsl/policy.lark, POLICY_ID): lowercase words joined by dashes.
NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


class ScaffoldError(Exception):
    """The name is not a policy id, or a file is already there."""


def title_of(name: str) -> str:
    return " ".join(word.capitalize() for word in name.split("-"))


def policy_text(name: str, title: str, today: datetime.date) -> str:
    day = today.isoformat()
    return f"""# {title}, encoded for medpol.
#
# Scaffolded by `medpol new`. Replace the example fact, codes and rules with the policy's own,
# each rule beside the passage it encodes; add `source "FILE.txt"` under the header once the
# policy text sits beside this file, so that `medpol check` verifies every quoted passage.
medpol 1

policy {name} "{title}"
  revision 1 dated {day} effective {day}

facts
  criteria_met: bool
    "Does the member meet the coverage criteria?"

codes covered_items "Items this policy covers"
  E1399 "DURABLE MEDICAL EQUIPMENT, MISCELLANEOUS"

section coverage "Coverage"
  rule coverage.covered_items
    "The items are covered when the member meets the coverage criteria."
    cover covered_items when criteria_met

  rule coverage.criteria_not_met
    "The items are denied as not reasonable and necessary when the criteria are not met."
    otherwise deny as not reasonable and necessary
"""


def tests_text(name: str, today: datetime.date) -> str:
    return f"""# Tests of {name}.policy: run them with `medpol test {name}.tests.yaml --coverage`.
# Each case is a claim (docs/claims-contract.md) and the outcome expected for each of its lines.
policy: {name}.policy
defaults:
  member: {{id: M-1, birth_date: "1970-03-02", line_of_business: commercial}}
  diagnoses: []
  line: {{service_date: "{today.isoformat()}"}}
cases:
  - name: covered when the criteria are met
    claim:
      lines: [E1399]
      facts: {{criteria_met: true}}
    expect:
      - {{seq: 1, outcome: covered, rule: coverage.covered_items}}

  - name: denied when the criteria are not met
    claim:
      lines: [E1399]
      facts: {{criteria_met: false}}
    expect:
      - {{seq: 1, outcome: denied, category: not_reasonable_and_necessary, rule: coverage.criteria_not_met}}
"""


def create(name: str, directory: Path, today: datetime.date) -> list[Path]:
    """Write NAME.policy and NAME.tests.yaml in `directory`; both or neither."""
    if not NAME.fullmatch(name):
        raise ScaffoldError(
            f"`{name}` is not a policy name: use lowercase letters and digits in words joined by dashes, "
            "e.g. `insulin-infusion-pump`"
        )
    policy = directory / f"{name}.policy"
    tests = directory / f"{name}.tests.yaml"
    try:
        existing = [p for p in (policy, tests) if p.exists()]
        if existing:
            raise ScaffoldError(f"`{existing[0]}` already exists; medpol new never overwrites a file")
        directory.mkdir(parents=True, exist_ok=True)
        # `x` mode: a file that appeared since the check above is still not overwritten.
        with policy.open("x", encoding="utf-8") as fh:
            fh.write(policy_text(name, title_of(name), today))
    except OSError as err:  # a name too long for the file system, a folder that cannot be made
        raise ScaffoldError(f"cannot write `{err.filename or policy}`: {err.strerror}") from None
    try:
        with tests.open("x", encoding="utf-8") as fh:
            fh.write(tests_text(name, today))
    except OSError as err:
        policy.unlink()
        if isinstance(err, FileExistsError):
            raise ScaffoldError(f"`{tests}` already exists; medpol new never overwrites a file") from None
        raise ScaffoldError(f"cannot write `{tests}`: {err.strerror}") from None
    return [policy, tests]
