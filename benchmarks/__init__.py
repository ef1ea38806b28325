"""Benchmarks and the load test: ``python -m benchmarks`` prints the tables (see README)."""
