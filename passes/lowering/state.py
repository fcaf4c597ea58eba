"""What the lowered graph holds for a tensor of the legalized graph, and the exact algebra on it.

Three states (``passes.lowering.walker`` keeps one per tensor):

* ``Vals``: a tensor of unscaled format values ``v`` and an exact scale: ``tensor = scale * v``;
* ``Aff``: an exact integer accumulator ``acc`` and exact rationals ``a``, ``b`` (per channel):
  ``tensor = layout(clip?(relu?(a * acc + b)))``, ``clip`` optional per-tensor bounds ``(lo, hi)`` (ReLU6, clamp),
  ``layout`` a list of pending data-movement ops (Transpose / Reshape / Flatten ...) that are applied to the
  requantized values instead of the integers;
* ``Flt``: a plain float tensor (graph input, output of a float island).

Every scale and parameter is an object array of ``fractions.Fraction``: the fp32 / fp64 numbers of the graph are
dyadic rationals, taken exactly (``compiler.numerics.as_fraction``), so folding them into thresholds never rounds.
"""

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from qonnx.util.basic import get_by_name

from compiler.errors import UnsupportedNodeError
from compiler.numerics import as_fraction

_frac = np.vectorize(as_fraction, otypes=[object])


def fractions(x):
    """Object array of exact Fractions from a number / array."""
    return _frac(np.asarray(x, dtype=object) if not isinstance(x, np.ndarray) else x.astype(object))


def is_scalar(arr):
    return np.asarray(arr).size == 1


def scalar_of(arr):
    """The element of a one-element array (a per-tensor scale or constant), as stored (Fraction or float)."""
    return np.asarray(arr, dtype=object).ravel()[0]


@dataclass
class Vals:
    name: str
    fmt: object
    scale: np.ndarray  # object array of Fractions, broadcastable to the tensor
    const: bool = False

    def __post_init__(self):
        self.scale = np.asarray(self.scale, dtype=object)

    def unit(self):
        """The value of one integer step of a per-tensor scaled tensor: ``scale * 2**lsb_exponent``."""
        return scalar_of(self.scale) * Fraction(2) ** self.fmt.lsb_exponent


@dataclass
class Aff:
    acc: str
    acc_shape: list
    a: np.ndarray  # object arrays of Fractions, broadcastable to the logical shape
    b: np.ndarray
    relu: bool = False
    layout: list = field(default_factory=list)  # [(node copy, pre_shape, post_shape)]
    clip: tuple = None  # (lo, hi) exact Fractions, either None for no bound: applied after the ReLU

    def __post_init__(self):
        self.a = np.asarray(self.a, dtype=object)
        self.b = np.asarray(self.b, dtype=object)

    def remap(self, a, b, relu=False, clip=None):
        """The same accumulator and layout with new parameters ``a``, ``b`` (a linear op applied after it)."""
        return Aff(self.acc, self.acc_shape, a, b, relu, self.layout, clip)


@dataclass
class Flt:
    name: str


def params_to_acc(st):
    """(a, b) of an Aff mapped from logical coordinates to the accumulator's coordinates (its layout undone)."""
    a, b = st.a, st.b
    for node, pre, post in reversed(st.layout):
        if is_scalar(a) and is_scalar(b):
            break
        full = [1] + list(post[1:])
        a = np.broadcast_to(a, full) if a.ndim <= len(full) else a
        b = np.broadcast_to(b, full) if b.ndim <= len(full) else b
        if node.op_type == "Transpose":
            perm = list(get_by_name(node.attribute, "perm").ints)
            inv = list(np.argsort(perm))
            a, b = a.transpose(inv), b.transpose(inv)
        else:
            a, b = a.reshape([1] + list(pre[1:])), b.reshape([1] + list(pre[1:]))
    return a, b


def moved(st, entry):
    """The Aff after one more pending data-movement op ``entry = (node, pre_shape, post_shape)``: per-channel
    parameters follow the data (transposed / reshaped like it), the accumulator stays."""
    node, pre, post = entry
    a, b = st.a, st.b
    if node.op_type == "Transpose" and not (is_scalar(a) and is_scalar(b)):
        rank = len(pre)
        perm = list(get_by_name(node.attribute, "perm").ints)
        a = np.broadcast_to(a, [1] * (rank - a.ndim) + list(a.shape)).transpose(perm)
        b = np.broadcast_to(b, [1] * (rank - b.ndim) + list(b.shape)).transpose(perm)
    elif not (is_scalar(a) and is_scalar(b)):
        full_pre, full_post = [1] + list(pre[1:]), [1] + list(post[1:])
        a = np.broadcast_to(a, full_pre).reshape(full_post)
        b = np.broadcast_to(b, full_pre).reshape(full_post)
    return Aff(st.acc, st.acc_shape, a, b, st.relu, st.layout + [entry], st.clip)


def frac_gcd(x, y):
    """Greatest rational g with x/g and y/g integers (x, y nonzero dyadic/rational)."""
    x, y = Fraction(x), Fraction(y)
    return Fraction(math.gcd(abs(x.numerator), abs(y.numerator)), math.lcm(x.denominator, y.denominator))


def channel_vectors(a, b, rank, where):
    """(channel axis, per-channel a, per-channel b) of accumulator-coordinate parameters (scalar -> one channel).

    A threshold requantizer has one row of thresholds per channel along one axis; parameters that vary along two
    axes raise ``UnsupportedNodeError`` naming ``where`` (the quantizer)."""
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    shape = np.broadcast_shapes(a.shape, b.shape)
    shape = (1,) * (rank - len(shape)) + tuple(shape)
    a, b = np.broadcast_to(a, shape), np.broadcast_to(b, shape)
    varying = [ax for ax in range(rank) if shape[ax] > 1 and (
        np.any(a != np.take(a, [0], axis=ax)) or np.any(b != np.take(b, [0], axis=ax)))]
    if not varying:
        return -1, [a.ravel()[0]], [b.ravel()[0]]
    if len(varying) > 1:
        raise UnsupportedNodeError(
            f"{where}: the scale/bias before this quantizer varies along axes {varying} of the accumulator; a "
            "threshold requantizer needs per-tensor or per-channel (one axis) parameters"
        )
    ax = varying[0]
    index = [0] * rank
    av, bv = [], []
    for c in range(shape[ax]):
        index[ax] = c
        av.append(a[tuple(index)])
        bv.append(b[tuple(index)])
    return ax - rank, av, bv
