"""Eval harness: ``rag eval`` or ``python -m evals``."""
