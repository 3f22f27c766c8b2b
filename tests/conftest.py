"""Shared pytest configuration for the medpol tests."""

from __future__ import annotations


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden .expected files from the current output instead of comparing against them",
    )
