"""Benchmark scripts: they print speed and size numbers; timings never go in tests."""
