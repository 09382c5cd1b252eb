"""Benchmarks of the overlay: the sweeps behind the tables and plots in docs/results."""
