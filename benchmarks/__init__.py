"""Benchmarks of the overlay: the sweeps behind the README's tables and plots."""
