"""The nudge: current ``-beta dC/dx`` (A) into the output nodes, toward the targets (DESIGN.md §1).

Numpy: :func:`current` and its Jacobian ``-beta d^2C/dx^2`` (:func:`jacobian`). SPICE: for squared
error one ``G`` per output controlled by ``v(target) - v(out)`` (gain beta); for cross-entropy a
``B`` source per output with the softmax written out (:func:`softmax_expressions`) and beta
carried as a voltage (so that both signs of beta share one circuit).
"""

from __future__ import annotations

import numpy as np

from circuitep.costs import Cost, CrossEntropy
from circuitep.elements import expr as ex
from circuitep.netlist import Element


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


def softmax_expressions(
    outs: list[str], targets: list[str], tau: float, beta_node: str
) -> list[ex.Expr]:
    """The cross-entropy nudge currents (A) into each output.

    ``-beta dC/dx_o = beta / tau (y_o / sum(y) - p_o)`` with ``p = softmax(v(outs) / tau)``, beta
    read as the voltage of ``beta_node`` (V standing for S: 1 V is beta = 1 S) and the targets
    ``y`` as the voltages of ``targets``.

    Parameters
    ----------
    outs : list of str
        The output nodes' SPICE names.
    targets : list of str
        The target nodes' SPICE names, one per output.
    tau : float
        Softmax temperature (V).
    beta_node : str
        Node whose voltage holds beta.

    Returns
    -------
    list of Expr
        One current per output (A).
    """
    total = ex.total(ex.v(t) for t in targets)
    norm = ex.total(ex.exp(ex.v(o) / tau) for o in outs)
    return [
        ex.v(beta_node) / tau * (ex.v(tgt) / total - ex.exp(ex.v(node) / tau) / norm)
        for node, tgt in zip(outs, targets, strict=True)
    ]


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
    if isinstance(cost, CrossEntropy):
        exprs = softmax_expressions(outs, targets, cost.tau, beta_node)
        return [
            Element("B", f"bnudge_{dst}", ("0", dst), ex.to_spice(e))
            for e, dst in zip(exprs, into, strict=True)
        ]
    return [
        Element("G", f"gnudge_{dst}", ("0", dst, tgt, node), beta)
        for node, tgt, dst in zip(outs, targets, into, strict=True)
    ]
