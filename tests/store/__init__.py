"""Tests of atomabench.store; ``factories`` builds the records they store."""
