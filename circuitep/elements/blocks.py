"""Jacobian blocks of a coupling's stamp, in the forms the element modules return them.

A block ``d i_a / d v_b`` (S) between a coupling's ``dst`` nodes (``m``) and ``src`` nodes
(``n``) is a constant matrix ``(m, n)``, a batched one ``(batch, m, n)``, or a :class:`Scaled`
matrix ``W * col[b, None, :]`` (a transconductor's ``W`` times the slope of its transfer at each
sample's source voltages), kept factored so that a product with it costs one matrix product.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Scaled(NamedTuple):
    """The batched block ``w[None, :, :] * col[:, None, :]``: ``w`` (m, n), ``col`` (batch, n)."""

    w: np.ndarray
    col: np.ndarray


Block = np.ndarray | Scaled


def dense(block: Block) -> np.ndarray:
    """``block`` as a constant ``(m, n)`` or batched ``(batch, m, n)`` array.

    Parameters
    ----------
    block : Block
        A constant ``(m, n)`` array, a batched ``(batch, m, n)`` one or a :class:`Scaled` block.

    Returns
    -------
    numpy.ndarray
        The block as an array.
    """
    if isinstance(block, Scaled):
        return block.w[None, :, :] * block.col[:, None, :]
    return block


def matvec(block: Block, v: np.ndarray) -> np.ndarray:
    """``block v`` per sample: ``v`` (batch, n) to (batch, m).

    Parameters
    ----------
    block : Block
        A constant ``(m, n)`` array, a batched ``(batch, m, n)`` one or a :class:`Scaled` block.
    v : numpy.ndarray
        Vectors, one per sample, ``(batch, n)`` (``(batch, m)`` for the transpose).

    Returns
    -------
    numpy.ndarray
        ``block v``, ``(batch, m)``.
    """
    if isinstance(block, Scaled):
        return (v * block.col) @ block.w.T
    if block.ndim == 2:
        return v @ block.T
    return np.einsum("bij,bj->bi", block, v)


def rmatvec(block: Block, v: np.ndarray) -> np.ndarray:
    """``block^T v`` per sample: ``v`` (batch, m) to (batch, n).

    Parameters
    ----------
    block : Block
        A constant ``(m, n)`` array, a batched ``(batch, m, n)`` one or a :class:`Scaled` block.
    v : numpy.ndarray
        Vectors, one per sample, ``(batch, n)`` (``(batch, m)`` for the transpose).

    Returns
    -------
    numpy.ndarray
        ``block^T v``, ``(batch, n)``.
    """
    if isinstance(block, Scaled):
        return (v @ block.w) * block.col
    if block.ndim == 2:
        return v @ block
    return np.einsum("bij,bi->bj", block, v)


def take(block: Block, rows: np.ndarray) -> Block:
    """The block for a subset of the samples (constant blocks are shared).

    Parameters
    ----------
    block : Block
        A constant ``(m, n)`` array, a batched ``(batch, m, n)`` one or a :class:`Scaled` block.
    rows : numpy.ndarray
        Indices of the samples to keep.

    Returns
    -------
    Block
        The block of the samples ``rows``.
    """
    if isinstance(block, Scaled):
        return Scaled(block.w, block.col[rows])
    return block if block.ndim == 2 else block[rows]


def scale(block: Block, factor: np.ndarray) -> Block:
    """``block`` multiplied elementwise by ``factor`` (m, n), in the same form.

    Parameters
    ----------
    block : Block
        A constant ``(m, n)`` array, a batched ``(batch, m, n)`` one or a :class:`Scaled` block.
    factor : numpy.ndarray
        Factors ``(m, n)`` (dimensionless), the same for every sample.

    Returns
    -------
    Block
        The product.
    """
    if isinstance(block, Scaled):
        return Scaled(block.w * factor, block.col)
    return block * factor


def transpose(block: Block) -> np.ndarray:
    """``block^T`` as a constant ``(n, m)`` or batched ``(batch, n, m)`` array.

    Parameters
    ----------
    block : Block
        A constant ``(m, n)`` array, a batched ``(batch, m, n)`` one or a :class:`Scaled` block.

    Returns
    -------
    numpy.ndarray
        ``block^T``.
    """
    d = dense(block)
    return d.T if d.ndim == 2 else np.swapaxes(d, 1, 2)
