"""The element kinds: one module per kind, listed in :mod:`circuitep.elements.registry`."""
