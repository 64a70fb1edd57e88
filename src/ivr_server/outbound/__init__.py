"""Placeholder package: filled in by the next commits."""
