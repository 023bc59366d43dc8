"""Evaluation: metrics, evaluate() and the eval report.

An empty face: import each name from the module that defines it."""
