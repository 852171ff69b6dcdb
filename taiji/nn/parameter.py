"""`Parameter`: a Tensor that a Module registers as a learnable weight."""
from __future__ import annotations

from taiji.tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor that requires grad by default and is registered by ``Module``
    attribute assignment (PyTorch's ``nn.Parameter``).

    Args:
        data: the initial value (a Tensor; its storage is shared).
        requires_grad: whether the parameter is trained (default True).

    Example:
        >>> w = taiji.nn.Parameter(taiji.zeros(3))
        >>> w.requires_grad
        True
    """

    __slots__ = ()

    def __init__(self, data: Tensor | None = None, requires_grad: bool = True):
        if data is None:
            from taiji._creation import empty
            data = empty(0)
        if not isinstance(data, Tensor):
            from taiji._creation import tensor
            data = tensor(data)
        self._init_fields(data._data)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + Tensor.__repr__(self)

    __str__ = __repr__


class Buffer(Tensor):
    """Marks a tensor to be registered as a buffer by attribute assignment."""

    __slots__ = ("persistent",)

    def __init__(self, data: Tensor, *, persistent: bool = True):
        self._init_fields(data._data)
        self.persistent = persistent
