"""Benchmarks of medpol, measured against baselines in the same run."""
