"""Engines: solve a phase of a network for a batch and return an operating point (DESIGN.md §3)."""
