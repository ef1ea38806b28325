"""Eval harness: ``python -m evals`` (``rag eval`` runs it)."""
