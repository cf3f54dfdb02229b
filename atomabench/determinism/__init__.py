"""Determinism under batching: plan the R/B/P/U checks, compare runs, tier a node, fingerprint it,
and verify another node's claimed tokens by teacher-forced re-scoring.

Protocol and sources: DESIGN.md and docs/determinism.md. Comparisons are pure functions of records.
"""
