"""Benchmarks: each prints JSON lines with our figure and a baseline measured in the same run."""
