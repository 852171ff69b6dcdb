"""Activation modules (thin wrappers over ``taiji.nn.functional``)."""
from __future__ import annotations

from taiji.nn import functional as F
from taiji.nn.module import Module
from taiji.tensor import Tensor


class _Act(Module):
    _fn = None
    _args: tuple = ()

    def __init__(self, *args, inplace: bool = False, **kwargs):
        super().__init__()
        names = self._args
        vals = dict(zip(names, args))
        vals.update(kwargs)
        for k in names:
            if k in vals:
                setattr(self, k, vals[k])
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._fn(input, *[getattr(self, k) for k in self._args])

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={getattr(self, k)}" for k in self._args)


def _act(name, fn, args=(), defaults=(), doc=""):
    def __init__(self, *a, inplace=False, **kw):
        vals = {**dict(zip(args, defaults)), **dict(zip(args, a)), **kw}
        _Act.__init__(self, inplace=inplace, **vals)
    cls = type(name, (_Act,), {"_fn": staticmethod(fn), "_args": tuple(args),
                               "__init__": __init__, "__doc__": doc or f"{name} activation."})
    cls.__module__ = __name__
    return cls


ReLU = _act("ReLU", F.relu, doc="max(x, 0)")
ReLU6 = _act("ReLU6", F.relu6)
LeakyReLU = _act("LeakyReLU", F.leaky_relu, ("negative_slope",), (0.01,))
ELU = _act("ELU", F.elu, ("alpha",), (1.0,))
CELU = _act("CELU", F.celu, ("alpha",), (1.0,))
SELU = _act("SELU", F.selu)
GELU = _act("GELU", F.gelu, ("approximate",), ("none",))
SiLU = _act("SiLU", F.silu)
Mish = _act("Mish", F.mish)
Tanh = _act("Tanh", F.tanh)
Sigmoid = _act("Sigmoid", F.sigmoid)
Softplus = _act("Softplus", F.softplus, ("beta", "threshold"), (1.0, 20.0))
Hardtanh = _act("Hardtanh", F.hardtanh, ("min_val", "max_val"), (-1.0, 1.0))
Hardsigmoid = _act("Hardsigmoid", F.hardsigmoid)
Hardswish = _act("Hardswish", F.hardswish)
Softsign = _act("Softsign", F.softsign)
LogSigmoid = _act("LogSigmoid", F.logsigmoid)
Threshold = _act("Threshold", F.threshold, ("threshold", "value"), (0.0, 0.0))
GLU = _act("GLU", F.glu, ("dim",), (-1,))
Softmax = _act("Softmax", F.softmax, ("dim",), (None,))
LogSoftmax = _act("LogSoftmax", F.log_softmax, ("dim",), (None,))
Softmin = _act("Softmin", F.softmin, ("dim",), (None,))


class PReLU(Module):
    """max(0, x) + a * min(0, x) with a learned ``a`` (one or per channel)."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        super().__init__()
        from taiji._creation import full
        from taiji.nn.parameter import Parameter
        self.num_parameters = num_parameters
        self.weight = Parameter(full((num_parameters,), init, dtype=dtype))

    def forward(self, input: Tensor) -> Tensor:
        from taiji import _ops as O
        w = self.weight
        if input.ndim >= 2 and self.num_parameters > 1:
            w = O.reshape(w, (1, -1) + (1,) * (input.ndim - 2))
        return O.where(input > 0, input, input * w)
