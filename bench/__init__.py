"""Benchmarks against a floor measured in the same run on the same local cluster (`make bench`)."""
