"""Benchmarks behind `python -m deeparch bench` and `bench-explore`: ratios measured in one run."""
