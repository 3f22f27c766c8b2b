"""Files of claims in, decisions out: streamed in chunks on every core of one machine (local), or
with Dask across machines (distributed), in input order.

It owns reading and writing claims and decisions in bulk and the worker processes. It does not
decide a claim itself: every line is decided by medpol.engine through a compiled policy.
"""
