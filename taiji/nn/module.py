"""`Module`: the base class of layers and models (PyTorch's ``nn.Module``).

A module owns parameters, buffers and submodules, registered by attribute assignment. Each
module remembers its qualified path in the model (``fc2``, ``encoder.layers.0``), so a layer
called with a bad input can say where it sits (``model.fc2 (Linear 256->128) ...``).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator

import numpy as np

from taiji._core.interpreters import MODULE_EPOCH
from taiji.tensor import Tensor
from taiji.nn.parameter import Buffer, Parameter


class _Handle:
    """Returned by ``register_*_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, store: dict, key: int):
        self._store, self._key = store, key

    def remove(self) -> None:
        self._store.pop(self._key, None)


_hook_id = [0]


class _IncompatibleKeys:
    def __init__(self, missing, unexpected):
        self.missing_keys, self.unexpected_keys = missing, unexpected

    def __iter__(self):
        return iter((self.missing_keys, self.unexpected_keys))

    def __repr__(self):
        return ("<All keys matched successfully>" if not self.missing_keys and
                not self.unexpected_keys else
                f"_IncompatibleKeys(missing_keys={self.missing_keys}, "
                f"unexpected_keys={self.unexpected_keys})")


def _put(store: dict, name: str, value) -> None:
    """``store[name] = value``; replacing a different object bumps ``MODULE_EPOCH``, since
    compiled programs captured the old one and must recompile."""
    if store.get(name, value) is not value:
        MODULE_EPOCH[0] += 1
    store[name] = value


class Module:
    """Base class for all neural-network modules.

    Subclasses define ``forward``; calling the module runs forward hooks around it.

    Example:
        >>> class Net(taiji.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.fc = taiji.nn.Linear(4, 2)
        ...     def forward(self, x):
        ...         return self.fc(x).relu()
    """

    training: bool
    _version = 1

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected arguments")
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent_buffers_set"] = set()
        d["_modules"] = OrderedDict()
        d["_forward_hooks"] = OrderedDict()
        d["_forward_pre_hooks"] = OrderedDict()
        d["_path"] = ""

    # ------------------------------------------------------------ registration
    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError("cannot assign attributes before Module.__init__() call")
        params, bufs, mods = d["_parameters"], d["_buffers"], d["_modules"]
        for store in (params, bufs, mods):
            if name in store and store[name] is not value:
                MODULE_EPOCH[0] += 1  # compiled programs captured the old one: recompile
                break
        if isinstance(value, (Parameter, Buffer, Module)):
            for store in (params, bufs, mods):
                store.pop(name, None)
            d.pop(name, None)
        if isinstance(value, Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, Buffer):
            self.register_buffer(name, Tensor._from_payload(value._data), value.persistent)
        elif isinstance(value, Module):
            mods[name] = value
            value._set_path(f"{self._path}.{name}" if self._path else name)
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as parameter "
                                f"'{name}' (taiji.nn.Parameter or None expected)")
            params[name] = None
        elif name in bufs:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                                f"(Tensor or None expected)")
            bufs[name] = value
        elif name in mods:
            if value is not None:
                raise TypeError(f"cannot assign '{type(value).__name__}' as child module "
                                f"'{name}' (taiji.nn.Module or None expected)")
            mods[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            s = d.get(store)
            if s is not None and name in s:
                return s[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                MODULE_EPOCH[0] += 1
                del store[name]
                self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers)
                      | set(self._modules))

    def _set_path(self, path: str) -> None:
        self.__dict__["_path"] = path
        for name, m in self._modules.items():
            if m is not None:
                m._set_path(f"{path}.{name}")

    def _where(self) -> str:
        """This module's place in the model for error messages (``model.fc2``)."""
        return "model." + self._path if self._path else (
            "model" if self._modules else type(self).__name__)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or None) under ``name``."""
        if "." in name or name == "":
            raise KeyError(f"parameter name can't contain '.' or be empty, got {name!r}")
        if hasattr(type(self), name) or (name in self.__dict__ and name not in self._parameters):
            raise KeyError(f"attribute '{name}' already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign '{type(param).__name__}' object to parameter "
                            f"'{name}' (taiji.nn.Parameter or None required)")
        if param is not None and param.grad_fn is not None:
            raise ValueError(f"cannot assign a non-leaf Tensor to parameter '{name}'; "
                             f"use .detach() to make a leaf")
        _put(self._parameters, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a buffer: state that is not trained (running statistics); persistent buffers
        appear in ``state_dict``."""
        if "." in name or name == "":
            raise KeyError(f"buffer name can't contain '.' or be empty, got {name!r}")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{type(tensor).__name__}' object to buffer "
                            f"'{name}' (Tensor or None required)")
        if isinstance(tensor, Parameter):
            tensor = Tensor._from_payload(tensor._data)
        self.__dict__.pop(name, None)
        _put(self._buffers, name, tensor)
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        """Register a submodule under ``name``."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        _put(self._modules, name, module)
        if module is not None:
            module._set_path(f"{self._path}.{name}" if self._path else name)

    register_module = add_module

    def get_submodule(self, target: str) -> "Module":
        mod = self
        for part in target.split(".") if target else []:
            if part not in mod._modules:
                raise AttributeError(f"{type(mod).__name__} has no submodule '{part}'")
            mod = mod._modules[part]
        return mod

    def get_parameter(self, target: str) -> Parameter:
        mod_path, _, name = target.rpartition(".")
        return self.get_submodule(mod_path)._parameters[name]

    # ------------------------------------------------------------ iteration
    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True
                      ) -> Iterator[tuple[str, "Module"]]:
        """(qualified name, module) for this module and every descendant, once each."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is None:
                continue
            yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name,
                                       remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, attr, prefix, recurse, remove_duplicate=True):
        seen = set()
        mods = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for k, v in getattr(m, attr).items():
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                seen.add(id(v))
                yield (f"{mp}.{k}" if mp else k), v

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(qualified name, parameter) pairs, shared parameters once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def num_parameters(self, only_trainable: bool = False) -> int:
        """How many scalar parameters the module holds."""
        return sum(p.numel() for p in self.parameters()
                   if p.requires_grad or not only_trainable)

    # ------------------------------------------------------------ state dict
    def state_dict(self, destination=None, prefix: str = "", keep_vars: bool = False
                   ) -> "OrderedDict[str, Tensor]":
        """Parameters and persistent buffers by PyTorch's key names (``fc.weight``)."""
        out = OrderedDict() if destination is None else destination
        for mp, m in self.named_modules(prefix=prefix.rstrip("."), remove_duplicate=False):
            for k, v in m._parameters.items():
                if v is not None:
                    out[f"{mp}.{k}" if mp else k] = v if keep_vars else v.detach()
            for k, v in m._buffers.items():
                if v is not None and k not in m._non_persistent_buffers_set:
                    out[f"{mp}.{k}" if mp else k] = v if keep_vars else v.detach()
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Copy values from ``state_dict`` into parameters and buffers.

        Args:
            state_dict: mapping from key to Tensor (or NumPy array).
            strict: raise if keys are missing or unexpected.
            assign: replace the tensors instead of copying into them.

        Returns:
            ``(missing_keys, unexpected_keys)``.

        Raises:
            RuntimeError: listing missing, unexpected and mis-shaped keys.
        """
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        shape_errs = []
        for k, t in own.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            shape = tuple(v.shape)
            if shape != tuple(t.shape):
                shape_errs.append(f"size mismatch for {k}: copying a param with shape "
                                  f"{list(shape)} from checkpoint, the shape in current model "
                                  f"is {list(t.shape)}.")
        errs = list(shape_errs)
        if strict:
            if unexpected:
                errs.insert(0, "Unexpected key(s) in state_dict: "
                            + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                errs.insert(0, "Missing key(s) in state_dict: "
                            + ", ".join(f'"{k}"' for k in missing) + ".")
        if errs:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errs))
        from taiji.autograd import no_grad
        from taiji._creation import as_tensor
        with no_grad():
            for k, t in own.items():
                if k not in state_dict:
                    continue
                v = state_dict[k]
                if not isinstance(v, Tensor):
                    v = as_tensor(np.asarray(v))
                if assign:
                    mp, _, name = k.rpartition(".")
                    m = self.get_submodule(mp)
                    if name in m._parameters:
                        m._parameters[name] = Parameter(v.detach(), t.requires_grad)
                    else:
                        m._buffers[name] = v.detach()
                else:
                    t.copy_(v.detach())
        return _IncompatibleKeys(missing, unexpected)

    # ------------------------------------------------------------ modes and moves
    def train(self, mode: bool = True) -> "Module":
        """Set training mode (Dropout drops, BatchNorm uses batch statistics)."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self) -> "Module":
        """Set evaluation mode (``train(False)``)."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters (to None by default)."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                p.grad = p.grad.detach().zeros_like()

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call ``fn`` on every submodule (children first) and on this module."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def _apply_tensors(self, fn) -> "Module":
        for m in self.modules():
            for k, p in m._parameters.items():
                if p is not None:
                    new = fn(p.detach())
                    p._data = new._data
                    if p.grad is not None:
                        p._grad = fn(p.grad)
            for k, b in m._buffers.items():
                if b is not None:
                    m._buffers[k]._data = fn(b)._data
        return self

    def to(self, *args, **kwargs) -> "Module":
        """Move/convert parameters and buffers in place (floating ones only for a dtype)."""
        def fn(t):
            if not t.dtype.is_floating_point:
                targs = [a for a in args if type(a).__name__ == "device" or (
                    isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda"))]
                kw = {k: v for k, v in kwargs.items() if k == "device"}
                return t.to(*targs, **kw) if targs or kw else t
            return t.to(*args, **kwargs)
        return self._apply_tensors(fn)

    def float(self) -> "Module":
        return self.to("float32")

    def double(self) -> "Module":
        return self.to("float64")

    def half(self) -> "Module":
        return self.to("float16")

    def cpu(self) -> "Module":
        return self.to("cpu")

    def cuda(self, device=None) -> "Module":
        """Move parameters and buffers to a GPU (the current one, or ``device``)."""
        from taiji.tensor import _cuda_device
        return self.to(_cuda_device(device))

    # ------------------------------------------------------------ calling
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"Module [{type(self).__name__}] is missing the required "
                                  f"\"forward\" function")

    def register_forward_hook(self, hook: Callable) -> _Handle:
        """``hook(module, args, output)`` after forward; a returned value replaces output."""
        _hook_id[0] += 1
        self._forward_hooks[_hook_id[0]] = hook
        return _Handle(self._forward_hooks, _hook_id[0])

    def register_forward_pre_hook(self, hook: Callable) -> _Handle:
        """``hook(module, args)`` before forward; a returned value replaces args."""
        _hook_id[0] += 1
        self._forward_pre_hooks[_hook_id[0]] = hook
        return _Handle(self._forward_pre_hooks, _hook_id[0])

    def __call__(self, *args, **kwargs):
        if not self._forward_hooks and not self._forward_pre_hooks:
            return self.forward(*args, **kwargs)
        for hook in list(self._forward_pre_hooks.values()):
            r = hook(self, args)
            if r is not None:
                args = r if isinstance(r, tuple) else (r,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            r = hook(self, args, out)
            if r is not None:
                out = r
        return out

    # ------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        for name, m in self._modules.items():
            s = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {s}")
        if not self._modules:
            return f"{self._get_name()}({extra})"
        return f"{self._get_name()}(\n  " + "\n  ".join(lines) + "\n)"

    def __getstate__(self):
        raise TypeError("taiji modules are not pickled; save weights with taiji.save("
                        "module.state_dict(), path)")

    def __deepcopy__(self, memo):
        """``copy.deepcopy(module)``: a copy with its own parameters, buffers and submodules."""
        import copy
        new = object.__new__(type(self))
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            new.__dict__[k] = copy.deepcopy(v, memo)
        return new
