"""Dropout layers: active in training mode, identity in eval mode."""
from __future__ import annotations

from taiji.nn import functional as F
from taiji.nn.module import Module
from taiji.tensor import Tensor


class Dropout(Module):
    """Zero elements with probability ``p`` in training (scaling the rest by 1/(1-p)).

    The mask comes from the global generator, so under ``jit`` it is implicit RNG state.
    """

    _fn = staticmethod(F.dropout)

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, input: Tensor) -> Tensor:
        return type(self)._fn(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(Dropout):
    _fn = staticmethod(F.dropout1d)


class Dropout2d(Dropout):
    _fn = staticmethod(F.dropout2d)


class AlphaDropout(Dropout):
    _fn = staticmethod(F.alpha_dropout)
