"""Tests of atomabench.report: the static site, its Markdown table, and the site in a real browser."""
