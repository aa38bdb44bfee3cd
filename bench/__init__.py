"""Benchmarks anyone can run (`.venv/bin/python -m bench.<name> --help`); results: docs/benchmarks.md."""
