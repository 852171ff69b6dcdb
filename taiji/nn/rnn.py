"""Recurrent layers: RNN (tanh / relu), LSTM, GRU and their single-step cells.

Names, shapes, gate order, parameter names and initialisation follow PyTorch, so a
``torch.nn.LSTM`` state_dict loads unchanged. The recurrence is a Python loop over time
steps written with taiji ops: eagerly it records one tape, under ``taiji.jit`` it unrolls
into one graph. The input projection ``x @ W_ih^T + b`` is computed for the whole sequence
in one matmul before the loop; only ``h @ W_hh^T`` runs per step.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from taiji import _ops as O
from taiji._creation import empty
from taiji.nn import functional as F
from taiji.nn import init
from taiji.nn.module import Module
from taiji.nn.parameter import Parameter
from taiji.tensor import Tensor

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# ---------------------------------------------------------------- one direction of one layer
# Each ``_run_*`` takes xw = x @ W_ih^T (+ biases), shape (L, N, G*H), and the initial state
# (None = zeros, which skips the first step's h @ W_hh^T). It returns the per-step outputs in
# time order and the final state.


def _run_rnn(xw, h, w_hh, b_hh, act, reverse):
    steps = range(xw.shape[0] - 1, -1, -1) if reverse else range(xw.shape[0])
    outs = [None] * xw.shape[0]
    for t in steps:
        g = O.select(xw, 0, t)
        if h is not None:
            g = g + O.linear(h, w_hh)
        h = act(g)
        outs[t] = h
    return outs, h


def _run_lstm(xw, h, c, w_hh, w_hr, reverse):
    steps = range(xw.shape[0] - 1, -1, -1) if reverse else range(xw.shape[0])
    outs = [None] * xw.shape[0]
    for t in steps:
        g = O.select(xw, 0, t)
        if h is not None:
            g = g + O.linear(h, w_hh)
        i, f, gg, o = O.chunk(g, 4, -1)
        i, f, o, gg = O.sigmoid(i), O.sigmoid(f), O.sigmoid(o), O.tanh(gg)
        c = i * gg if c is None else f * c + i * gg
        h = o * O.tanh(c)
        if w_hr is not None:
            h = O.linear(h, w_hr)
        outs[t] = h
    return outs, (h, c)


def _run_gru(xw, h, w_hh, b_hh, reverse):
    steps = range(xw.shape[0] - 1, -1, -1) if reverse else range(xw.shape[0])
    outs = [None] * xw.shape[0]
    for t in steps:
        xr, xz, xn = O.chunk(O.select(xw, 0, t), 3, -1)
        if h is None:
            if b_hh is None:
                r, z = O.sigmoid(xr), O.sigmoid(xz)
                n = O.tanh(xn)
            else:
                hr, hz, hn = O.chunk(b_hh, 3, -1)
                r, z = O.sigmoid(xr + hr), O.sigmoid(xz + hz)
                n = O.tanh(xn + r * hn)
            h = n - z * n
        else:
            hr, hz, hn = O.chunk(O.linear(h, w_hh, b_hh), 3, -1)
            r, z = O.sigmoid(xr + hr), O.sigmoid(xz + hz)
            n = O.tanh(xn + r * hn)
            h = n + z * (h - n)
        outs[t] = h
    return outs, h


class RNNBase(Module):
    """The shared machinery of RNN, LSTM and GRU (PyTorch's ``nn.RNNBase``).

    Args:
        mode: ``"RNN_TANH"``, ``"RNN_RELU"``, ``"LSTM"`` or ``"GRU"``.
        input_size: features of each input step.
        hidden_size: features of the hidden state.
        num_layers: stacked recurrent layers (default 1).
        bias: learn ``bias_ih`` and ``bias_hh`` (default True).
        batch_first: input and output are (N, L, F) instead of (L, N, F).
        dropout: dropout probability on the outputs of each layer but the last (training).
        bidirectional: run a second, reversed pass per layer and concatenate the outputs.
        proj_size: LSTM only: project the hidden state to this size (``weight_hr``).

    Every weight and bias starts as U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None):
        super().__init__()
        if mode not in _GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode}")
        if not isinstance(dropout, (int, float)) or not 0 <= dropout <= 1 or \
                isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             f"probability of an element being zeroed, got {dropout!r}")
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError(f"hidden_size must be a positive integer, got {hidden_size!r}")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
        if proj_size < 0:
            raise ValueError(f"proj_size should be a positive integer or zero, got {proj_size}")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, \
            proj_size
        num_dir = 2 if bidirectional else 1
        gate = _GATES[mode] * hidden_size
        real_h = proj_size if proj_size > 0 else hidden_size
        self._flat_weights_names: list[str] = []
        for layer in range(num_layers):
            for d in range(num_dir):
                in_sz = input_size if layer == 0 else real_h * num_dir
                sfx = f"_l{layer}" + ("_reverse" if d == 1 else "")
                shapes = [("weight_ih", (gate, in_sz)), ("weight_hh", (gate, real_h))]
                if bias:
                    shapes += [("bias_ih", (gate,)), ("bias_hh", (gate,))]
                if proj_size > 0:
                    shapes += [("weight_hr", (proj_size, hidden_size))]
                for name, shape in shapes:
                    setattr(self, name + sfx, Parameter(empty(*shape, dtype=dtype)))
                    self._flat_weights_names.append(name + sfx)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """No-op (cuDNN weight packing does not apply); kept for PyTorch compatibility."""

    @property
    def all_weights(self) -> list:
        names = self._flat_weights_names
        per = len(names) // (self.num_layers * (2 if self.bidirectional else 1))
        return [[getattr(self, n) for n in names[i:i + per]] for i in range(0, len(names), per)]

    def _layer_params(self, layer: int, reverse: bool):
        sfx = f"_l{layer}" + ("_reverse" if reverse else "")
        get = lambda n: self._parameters.get(n + sfx)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), \
            get("weight_hr")

    def _describe(self) -> str:
        return f"{self._where()} ({type(self).__name__} {self.input_size}->{self.hidden_size})"

    def _check_input(self, input: Tensor, hx_shapes) -> bool:
        if input.ndim not in (2, 3):
            raise ValueError(f"{self._describe()} expected input to be 2-D (unbatched) or 3-D "
                             f"(batched), got {input.ndim}-D input of shape "
                             f"{list(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{self._describe()} expected input last dim "
                               f"{self.input_size}, got {input.shape[-1]} (input of shape "
                               f"{list(input.shape)})")
        batched = input.ndim == 3
        n = input.shape[0 if self.batch_first else 1] if batched else None
        num_dir = 2 if self.bidirectional else 1
        real_h = self.proj_size if self.proj_size > 0 else self.hidden_size
        for what, h in hx_shapes:
            if h is None:
                continue
            want = (self.num_layers * num_dir,) + ((n,) if batched else ()) + \
                ((self.hidden_size if what == "c0" else real_h),)
            if tuple(h.shape) != want:
                kind = "batched 3-D" if batched else "unbatched 2-D"
                raise RuntimeError(f"{self._describe()} expected {what} of shape "
                                   f"{list(want)} for {kind} input, got {list(h.shape)}")
        return batched

    def _run(self, input: Tensor, h0: Tensor | None, c0: Tensor | None):
        """Shared forward: returns output, h_n and (LSTM) c_n in batched, time-major form."""
        lstm = self.mode == "LSTM"
        num_dir = 2 if self.bidirectional else 1
        x = input
        hs, cs = [], []
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0 and self.training:
                x = F.dropout(x, self.dropout, True)
            dir_outs = []
            for d in range(num_dir):
                w_ih, w_hh, b_ih, b_hh, w_hr = self._layer_params(layer, d == 1)
                idx = layer * num_dir + d
                h = None if h0 is None else O.select(h0, 0, idx)
                if self.mode == "GRU":
                    xw = O.linear(x, w_ih, b_ih)
                    outs, h = _run_gru(xw, h, w_hh, b_hh, d == 1)
                else:
                    b = None if b_ih is None else b_ih + b_hh
                    xw = O.linear(x, w_ih, b)
                    if lstm:
                        c = None if c0 is None else O.select(c0, 0, idx)
                        outs, (h, c) = _run_lstm(xw, h, c, w_hh, w_hr, d == 1)
                        cs.append(c)
                    else:
                        act = O.tanh if self.mode == "RNN_TANH" else O.relu
                        outs, h = _run_rnn(xw, h, w_hh, b_hh, act, d == 1)
                hs.append(h)
                dir_outs.append(O.stack(outs, 0))
            x = dir_outs[0] if num_dir == 1 else O.cat(dir_outs, -1)
        return x, O.stack(hs, 0), (O.stack(cs, 0) if lstm else None)

    def _forward(self, input: Tensor, h0, c0):
        batched = self._check_input(input, [("h0", h0), ("c0", c0)])
        if input.shape[1 if (batched and self.batch_first) else 0] == 0:
            raise RuntimeError(f"{self._describe()} got a sequence of length 0 (input of "
                               f"shape {list(input.shape)})")
        if not batched:
            input = O.unsqueeze(input, 1)
            h0 = None if h0 is None else O.unsqueeze(h0, 1)
            c0 = None if c0 is None else O.unsqueeze(c0, 1)
        elif self.batch_first:
            input = O.transpose(input, 0, 1)
        out, hn, cn = self._run(input, h0, c0)
        if not batched:
            out, hn = O.squeeze(out, 1), O.squeeze(hn, 1)
            cn = None if cn is None else O.squeeze(cn, 1)
        elif self.batch_first:
            out = O.transpose(out, 0, 1)
        return out, hn, cn

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


def _split_args(cls_name, args, kwargs, names):
    """PyTorch accepts the constructor arguments positionally or by keyword."""
    if len(args) > len(names):
        raise TypeError(f"{cls_name}() takes at most {len(names)} positional arguments")
    for n, a in zip(names, args):
        if n in kwargs:
            raise TypeError(f"{cls_name}() got multiple values for argument '{n}'")
        kwargs[n] = a
    return kwargs


_ARGS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
         "bidirectional")


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act = tanh or relu.

    Args:
        input_size, hidden_size, num_layers, nonlinearity ('tanh' | 'relu'), bias,
        batch_first, dropout, bidirectional: as in ``torch.nn.RNN``.

    Call ``rnn(input, h0=None)`` with input (L, N, H_in) ((N, L, H_in) if batch_first, or
    unbatched (L, H_in)) and h0 (D*num_layers, N, H). Returns ``(output, h_n)``.

    Example:
        >>> rnn = taiji.nn.RNN(10, 20, num_layers=2)
        >>> out, h = rnn(taiji.randn(5, 3, 10))
        >>> out.shape, h.shape
        ((5, 3, 20), (2, 3, 20))
    """

    def __init__(self, *args, **kwargs):
        kwargs = _split_args("RNN", args, kwargs, _ARGS[:3] + ("nonlinearity",) + _ARGS[3:])
        nl = kwargs.pop("nonlinearity", "tanh")
        if nl not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nl}'. Select from 'tanh' or 'relu'.")
        super().__init__("RNN_TANH" if nl == "tanh" else "RNN_RELU", **kwargs)
        self.nonlinearity = nl

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        out, hn, _ = self._forward(input, hx, None)
        return out, hn


class LSTM(RNNBase):
    """Long short-term memory, gates (i, f, g, o) as in ``torch.nn.LSTM``.

    i, f, o = sigmoid(...), g = tanh(...), c' = f*c + i*g, h' = o * tanh(c')
    (then h' = h' W_hr^T when ``proj_size > 0``).

    Call ``lstm(input, (h0, c0))`` (or ``lstm(input)`` for zero states). Returns
    ``(output, (h_n, c_n))``.

    Example:
        >>> lstm = taiji.nn.LSTM(10, 20, batch_first=True, bidirectional=True)
        >>> out, (h, c) = lstm(taiji.randn(3, 5, 10))
        >>> out.shape, h.shape
        ((3, 5, 40), (2, 3, 20))
    """

    def __init__(self, *args, **kwargs):
        kwargs = _split_args("LSTM", args, kwargs, _ARGS + ("proj_size",))
        super().__init__("LSTM", **kwargs)

    def forward(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None
                ) -> Tuple[Tensor, Tuple[Tensor, Tensor]]:
        if hx is None:
            h0 = c0 = None
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{self._describe()} expected hx to be a tuple (h0, c0), got "
                                f"{type(hx).__name__}")
            h0, c0 = hx
        out, hn, cn = self._forward(input, h0, c0)
        return out, (hn, cn)


class GRU(RNNBase):
    """Gated recurrent unit, gates (r, z, n) as in ``torch.nn.GRU``.

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z likewise,
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.

    Call ``gru(input, h0=None)``; returns ``(output, h_n)``.
    """

    def __init__(self, *args, **kwargs):
        kwargs = _split_args("GRU", args, kwargs, _ARGS)
        super().__init__("GRU", **kwargs)

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        out, hn, _ = self._forward(input, hx, None)
        return out, hn


# ---------------------------------------------------------------- cells


class RNNCellBase(Module):
    """Shared parameters of the single-step cells: weight_ih, weight_hh, bias_ih, bias_hh."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int,
                 device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = Parameter(empty(num_chunks * hidden_size, input_size, dtype=dtype))
        self.weight_hh = Parameter(empty(num_chunks * hidden_size, hidden_size, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size, dtype=dtype))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def _prep(self, input: Tensor, hxs) -> tuple:
        """Check shapes; add a batch dim to unbatched input. Returns (x, hxs, batched)."""
        where = f"{self._where()} ({type(self).__name__} {self.input_size}->{self.hidden_size})"
        if input.ndim not in (1, 2):
            raise ValueError(f"{where} expected input to be 1-D or 2-D, got {input.ndim}-D "
                             f"input of shape {list(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"{where} expected input last dim {self.input_size}, got "
                               f"{input.shape[-1]} (input of shape {list(input.shape)})")
        batched = input.ndim == 2
        want = ((input.shape[0],) if batched else ()) + (self.hidden_size,)
        for h in hxs:
            if h is not None and tuple(h.shape) != want:
                raise RuntimeError(f"{where} expected hidden state of shape {list(want)}, "
                                   f"got {list(h.shape)}")
        if not batched:
            input = O.unsqueeze(input, 0)
            hxs = [None if h is None else O.unsqueeze(h, 0) for h in hxs]
        # a missing state is zeros, as in PyTorch (so weight_hh still gets a zero gradient)
        zeros = np.zeros((input.shape[0], self.hidden_size), dtype=input.dtype.np)
        hxs = [O.const(zeros, input) if h is None else h for h in hxs]
        return input, hxs, batched

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        nl = getattr(self, "nonlinearity", "tanh")
        if nl != "tanh":
            s += f", nonlinearity={nl!r}"
        return s


class RNNCell(RNNCellBase):
    """One Elman RNN step: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh).

    Call ``cell(input, hx=None)`` with input (N, H_in) or (H_in,); returns h' (N, H).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__(input_size, hidden_size, bias, 1, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        x, (h,), batched = self._prep(input, [hx])
        g = O.linear(x, self.weight_ih, self.bias_ih) + O.linear(h, self.weight_hh, self.bias_hh)
        h = O.tanh(g) if self.nonlinearity == "tanh" else O.relu(g)
        return h if batched else O.squeeze(h, 0)


class LSTMCell(RNNCellBase):
    """One LSTM step. Call ``cell(input, (h, c))`` (or ``cell(input)``); returns (h', c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, dtype=dtype)

    def forward(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None
                ) -> Tuple[Tensor, Tensor]:
        h0, c0 = (None, None) if hx is None else hx
        x, (h, c), batched = self._prep(input, [h0, c0])
        b = None if self.bias_ih is None else self.bias_ih + self.bias_hh
        xw = O.unsqueeze(O.linear(x, self.weight_ih, b), 0)
        _, (h, c) = _run_lstm(xw, h, c, self.weight_hh, None, False)
        return (h, c) if batched else (O.squeeze(h, 0), O.squeeze(c, 0))


class GRUCell(RNNCellBase):
    """One GRU step. Call ``cell(input, hx=None)``; returns h'."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, dtype=dtype)

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        x, (h,), batched = self._prep(input, [hx])
        xw = O.unsqueeze(O.linear(x, self.weight_ih, self.bias_ih), 0)
        _, h = _run_gru(xw, h, self.weight_hh, self.bias_hh, False)
        return h if batched else O.squeeze(h, 0)
