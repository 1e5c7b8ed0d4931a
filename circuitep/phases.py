"""The learning phases' one vocabulary (DESIGN.md §1), shared by the compiler and the engines.

- ``free``: no nudge; the circuit settles at its free state ``x0``.
- ``nudged``: the current ``-beta dC/dx`` into the outputs (EP, VF).
- ``aep``: nudged, plus the AEP correction ``-(J - J^T)(x - x0)`` with ``J`` frozen at ``x0``.
- ``dyadic``: the doubled (adjoint) circuit; its second half settles at ``d = beta lambda``.
"""

from __future__ import annotations

from typing import Literal

#: Every phase a netlist can be compiled for and an engine can solve.
PHASES = ("free", "nudged", "aep", "dyadic")
#: The phases that inject the nudge current at the outputs into the circuit itself.
NUDGED = ("nudged", "aep")

PhaseName = Literal["free", "nudged", "aep", "dyadic"]
