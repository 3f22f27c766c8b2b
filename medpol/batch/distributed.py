"""Decide claims with Dask when one machine is not enough: the same compiled policy on every worker.

    import dask.bag as db
    from medpol.api import load_policy
    from medpol.batch.distributed import decide_bag

    policy = load_policy("policies/external-infusion-pump.policy")
    claims = db.read_text("claims-*.jsonl").map(orjson.loads)
    decisions = decide_bag(policy, claims)          # a bag of decision dicts, in order
    decisions.map(orjson.dumps).to_textfiles("decisions-*.jsonl")

The policy object pickles to its source text and rebuilds on each worker once per
partition, so nothing but the policy's text travels with the tasks.
"""

from __future__ import annotations

import datetime


def _decide_partition(claims, policy, as_of):
    decide = policy.engine.decide
    return [decide(claim, as_of) for claim in claims]


def decide_bag(policy, bag, as_of: datetime.date | None = None):
    """A Dask bag of decisions, one per claim of `bag`, partition by partition, in order."""
    return bag.map_partitions(_decide_partition, policy, as_of)


def _decide_frame(frame, policy, as_of, column):
    import orjson
    import pandas as pd

    decide = policy.engine.decide
    out = [orjson.dumps(decide(orjson.loads(raw), as_of)).decode() for raw in frame[column]]
    return pd.Series(out, index=frame.index, name="decision", dtype=object)


def decide_dataframe(policy, frame, column: str = "claim", as_of: datetime.date | None = None):
    """A Dask series of decision JSON strings, for a dataframe whose `column` holds claim JSON."""
    return frame.map_partitions(_decide_frame, policy, as_of, column, meta=("decision", object))
