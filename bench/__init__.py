"""Benchmarks that print figures (not timed tests); see BENCHMARKS.md."""
