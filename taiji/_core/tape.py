"""The eager autograd tape: one `Node` per recorded primitive call.

A node keeps its input Tensors with their version numbers (an in-place change to a saved
tensor is detected at backward time) and its outputs' payloads (so a rule that needs the
output gets one wired back to this node, without a reference cycle).
"""
from __future__ import annotations

import itertools
import os
import sys

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_seq = itertools.count()
_inside: dict = {}  # code object -> is it taiji's own code? (cached: this runs per op)


def user_frame(skip: int = 2):
    """(filename, lineno) of the innermost frame outside the taiji package."""
    f = sys._getframe(skip)
    inside = _inside
    while f is not None:
        code = f.f_code
        r = inside.get(code)
        if r is None:
            r = inside[code] = code.co_filename.startswith(_PKG)
        if not r:
            return (code.co_filename, f.f_lineno)
        f = f.f_back
    return ("<unknown>", 0)


def _where():
    """user_frame for Node: starts above Node.__init__, record and bind (all taiji's)."""
    f = sys._getframe(4)
    inside = _inside
    while f is not None:
        r = inside.get(f.f_code)
        if r is None:
            r = inside[f.f_code] = f.f_code.co_filename.startswith(_PKG)
        if not r:
            return f.f_code, f.f_lineno
        f = f.f_back
    return None, 0


class Node:
    """One recorded call: ``grad_fn`` of its outputs."""

    __slots__ = ("seq", "prim", "params", "inputs", "edges", "versions", "out_payloads", "n_out",
                 "where", "freed", "hooks", "retained", "display", "__weakref__")

    def __init__(self, prim, params, inputs, outs):
        self.seq = next(_seq)  # recording order: consumers always come later (backward order)
        self.prim = prim
        self.params = params
        self.inputs = inputs
        # where each input's gradient goes, fixed now: a later in-place op may rebind the
        # input Tensor to a newer node (PyTorch's saved-variable edges)
        edges, versions = [], []
        for t in inputs:
            n = t._node
            edges.append((n, t._out_idx) if n is not None else
                         ((t, -1) if t._requires_grad else None))
            versions.append(t._version)
        self.edges = edges
        self.versions = versions
        self.out_payloads = [o._data for o in outs]
        self.n_out = len(outs)
        self.where = _where()  # (code, line): the file name is looked up only for errors
        self.freed = False
        self.display = None    # PyTorch's name for the composite op, when it differs
        self.hooks = None      # output index -> {handle id: hook}
        self.retained = None   # output index -> weakref of a tensor that retains its grad

    def name(self) -> str:
        return _grad_fn_name(self.display or self.prim.name)

    def __repr__(self) -> str:
        return f"<{self.name()} object>"


# PyTorch's grad_fn names where a primitive's name differs from the op users wrote
_TORCH_NAMES = {"reduce_sum": "Sum", "reduce_max": "Amax", "reduce_min": "Amin",
                "reduce_prod": "Prod", "convert_element_type": "ToCopy", "reshape": "View",
                "transpose": "Permute", "broadcast_to": "Expand", "matmul": "Mm",
                "take": "Index", "take_along_axis": "Gather", "concatenate": "Cat",
                "select": "Where", "rem": "Remainder", "slice": "Slice",
                "pad": "ConstantPadNd", "index_add": "IndexAdd", "softmax": "Softmax",
                "log_softmax": "LogSoftmax"}


def _grad_fn_name(prim_name: str) -> str:
    prim_name = _TORCH_NAMES.get(prim_name, prim_name)
    return "".join(p[:1].upper() + p[1:] for p in prim_name.split("_")) + "Backward0"


def record(prim, args, params, result):
    """Attach a Node to ``result``'s tensors (they now require grad)."""
    if result.__class__ is tuple:
        node = Node(prim, params, args, result)
        for i, o in enumerate(result):
            if o.dtype.is_floating_point:
                o._requires_grad = True
                o._node = node
                o._out_idx = i
        return
    node = Node(prim, params, args, (result,))
    if result.dtype.is_floating_point:
        result._requires_grad = True
        result._node = node
