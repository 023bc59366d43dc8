"""Runs: label settings, chunking, the run folder, zsl label, the Ray engine and budgeted runs.

An empty face: import each name from the module that defines it."""
