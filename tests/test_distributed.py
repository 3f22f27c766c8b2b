"""The Dask adapter decides a partitioned file with the same compiled policy as the CLI."""

from __future__ import annotations

import pickle
from pathlib import Path

import orjson
import pytest

from benchmarks.eval import generate
from medpol.api import load_policy

dask = pytest.importorskip("dask")
db = pytest.importorskip("dask.bag")

ROOT = Path(__file__).resolve().parent.parent
POLICY = load_policy(ROOT / "policies" / "external-infusion-pump.policy")


def test_the_policy_pickles_and_decides_the_same():
    claim = generate(1, 3)[0]
    again = pickle.loads(pickle.dumps(POLICY))
    assert again.decide(claim) == POLICY.decide(claim)


def test_a_bag_over_a_partitioned_file_decides_in_order(tmp_path):
    from medpol.batch.distributed import decide_bag

    claims = generate(120, 21)
    for part in range(3):
        chunk = claims[part * 40 : (part + 1) * 40]
        (tmp_path / f"claims-{part}.jsonl").write_bytes(b"".join(orjson.dumps(c) + b"\n" for c in chunk))
    bag = db.read_text(str(tmp_path / "claims-*.jsonl")).map(orjson.loads)
    assert bag.npartitions == 3
    with dask.config.set(scheduler="processes", num_workers=2):
        decided = decide_bag(POLICY, bag).compute()
    assert decided == [POLICY.decide(c) for c in claims]


def test_a_dataframe_of_claim_json(tmp_path):
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    from medpol.batch.distributed import decide_dataframe

    claims = generate(30, 4)
    frame = dd.from_pandas(pd.DataFrame({"claim": [orjson.dumps(c).decode() for c in claims]}), npartitions=3)
    with dask.config.set(scheduler="synchronous"):
        decided = decide_dataframe(POLICY, frame).compute().tolist()
    assert [orjson.loads(d) for d in decided] == [POLICY.decide(c) for c in claims]
