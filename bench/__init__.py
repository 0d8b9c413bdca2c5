"""Benchmarks of the receiver against the ceiling of its own stack.

``python -m bench`` (or ``make bench``) runs everything and prints a report;
see docs/benchmarks.md for the numbers and what they mean.
"""
