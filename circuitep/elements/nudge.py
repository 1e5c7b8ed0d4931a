"""The nudge: current ``-beta dC/dx`` (A) into the output nodes, toward the targets (DESIGN.md §1).

Numpy: :func:`current` and its Jacobian ``-beta d^2C/dx^2`` (:func:`jacobian`). SPICE: for squared
error one ``G`` per output controlled by ``v(target) - v(out)`` (gain beta); for cross-entropy a
``B`` source per output with the softmax written out and beta carried as a voltage (so that both
signs of beta share one circuit).
"""

from __future__ import annotations

import numpy as np

from circuitep.costs import Cost, CrossEntropy
from circuitep.netlist import Element, spice_number


def current(beta: float, cost: Cost, x_out: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``-beta dC/dx_out`` (A, (batch, n_out)).

    Parameters
    ----------
    beta : float
        Nudge strength: S for squared error, A V for cross-entropy.
    cost : Cost
        The cost (:mod:`circuitep.costs`).
    x_out : numpy.ndarray
        Output node voltages, V, ``(batch, n_out)``.
    y : numpy.ndarray
        Targets, ``(batch, n_out)`` (V for squared error, probabilities for cross-entropy).

    Returns
    -------
    numpy.ndarray
        Nudge current into each output, A, ``(batch, n_out)``.
    """
    return -beta * cost.grad(x_out, y)


def jacobian(beta: float, cost: Cost, x_out: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``-beta d^2C/dx_out^2`` (S, (batch, n_out, n_out)).

    Parameters
    ----------
    beta : float
        Nudge strength: S for squared error, A V for cross-entropy.
    cost : Cost
        The cost (:mod:`circuitep.costs`).
    x_out : numpy.ndarray
        Output node voltages, V, ``(batch, n_out)``.
    y : numpy.ndarray
        Targets, ``(batch, n_out)`` (V for squared error, probabilities for cross-entropy).

    Returns
    -------
    numpy.ndarray
        Its derivative, S, ``(batch, n_out, n_out)``.
    """
    return -beta * cost.hessian(x_out, y)


def spice(
    outs: list[str], targets: list[str], into: list[str], beta: float, cost: Cost, beta_node: str
) -> list[Element]:
    """Nudge elements into the nodes ``into``.

    Nudge elements into the nodes ``into`` (the outputs or their adjoint nodes), from the output
    nodes ``outs`` and the target nodes ``targets``; cross-entropy reads beta from ``beta_node``.

    Parameters
    ----------
    outs : list of str
        The output nodes' SPICE names.
    targets : list of str
        The target nodes' SPICE names, one per output.
    into : list of str
        The nodes the nudge currents go into (the outputs or their adjoint nodes), one per
        output.
    beta : float
        Nudge strength: S for squared error, A V for cross-entropy.
    cost : Cost
        The cost (:mod:`circuitep.costs`).
    beta_node : str
        Node whose voltage holds beta (cross-entropy nudge).

    Returns
    -------
    list of Element
        A ``B`` source per output (cross-entropy) or a ``G`` toward the target (squared error).
    """
    els = []
    if isinstance(cost, CrossEntropy):
        tau = spice_number(cost.tau)
        total = "+".join(f"v({t})" for t in targets)
        norm = "+".join(f"exp(v({o})/{tau})" for o in outs)
        for node, tgt, dst in zip(outs, targets, into, strict=True):
            expr = f"v({beta_node})/{tau}*(v({tgt})/({total})-exp(v({node})/{tau})/({norm}))"
            els.append(Element("B", f"bnudge_{dst}", ("0", dst), expr))
        return els
    for node, tgt, dst in zip(outs, targets, into, strict=True):
        els.append(Element("G", f"gnudge_{dst}", ("0", dst, tgt, node), beta))
    return els
