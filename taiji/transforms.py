"""Function transforms with JAX's names: grad, value_and_grad, vjp, jvp, linearize, jacrev,
jacfwd, hessian, vmap.

Reverse mode (`grad`, `vjp`) is built on the eager tape: the differentiated inputs become
fresh tensors that require grad, the function runs with grad mode on, and
`taiji.autograd.grad` pulls cotangents back. The backward pass records again
(``create_graph``) only when something outside requires grad, which is exactly when the result
may be differentiated again (``grad(grad(f))``); otherwise results carry no history.

Forward mode (`jvp`) and batching (`vmap`) are interpreters (JAX's autodidax2 style): their
tracers hold *parent-level* Tensors, and every rule runs with the parent interpreter current,
so transforms nest in any order and autograd's tape records at exactly one level.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Sequence

import numpy as np

from taiji import _dtypes as dt
from taiji import _ops as O
from taiji import autograd as _autograd
from taiji._core.interpreters import STATE, set_interpreter
from taiji._prims import elementwise as _E
from taiji._core.batch_jvp import (  # noqa: F401
    BatchInterpreter, BatchTracer, ConcretizationError, JVPInterpreter, JVPTracer, _aval,
)
from taiji._tree import PyTreeDef, broadcast_prefix, tree_flatten, tree_map, tree_unflatten
from taiji.tensor import Tensor

__all__ = ["grad", "value_and_grad", "vjp", "jvp", "linearize", "jacrev", "jacfwd",
           "jacobian", "hessian", "vmap", "ConcretizationError"]


def _to_tensor(x, what: str = "argument") -> Tensor:
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (bool, int, float, np.number, np.bool_)):
        if type(x) is float:  # Python floats take the default dtype (float32)
            return O.scalar(x, dt.get_default_dtype())
        return O.const(np.asarray(x))
    if isinstance(x, np.ndarray):
        return O.const(x)
    raise TypeError(f"{what}: expected a Tensor, an array or a number, got "
                    f"{type(x).__name__}")


def _argnums_tuple(argnums, nargs: int, name: str) -> tuple:
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for a in nums:
        if not isinstance(a, int) or not -nargs <= a < nargs:
            raise TypeError(f"{name}: argnums {argnums!r} is out of bounds for a function "
                            f"called with {nargs} positional argument(s)")
    return tuple(a % nargs for a in nums)


def _fresh(x: Tensor) -> Tensor:
    """A tensor that requires grad and stands for ``x``: a fresh leaf, or (when ``x`` is
    itself differentiated from outside) a recorded copy, so gradients flow back to it."""
    if x._requires_grad and STATE.grad_enabled:
        return _E.convert(x, dtype=x.dtype)
    return Tensor._from_payload(x._data, requires_grad=True)


def _reaches_outside(outs, own: set) -> bool:
    """True when the tape behind ``outs`` reaches a tensor that requires grad and is not one
    of ``own`` (ids of our fresh leaves): a closed-over parameter, say."""
    seen, stack = set(), [o._node for o in outs if isinstance(o, Tensor) and o._node is not None]
    for o in outs:
        if isinstance(o, Tensor) and o._requires_grad and o._node is None and id(o) not in own:
            return True
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        for e in n.edges:
            if e is None:
                continue
            src, i = e
            if i < 0:
                if id(src) not in own:
                    return True
            else:
                stack.append(src)
    return False


def _detach_tree(tree):
    return tree_map(lambda x: x.detach() if isinstance(x, Tensor) else x, tree)


def _zeros_for(x: Tensor) -> Tensor:
    return x.zeros_like()

# ---------------------------------------------------------------- grad and value_and_grad


def value_and_grad(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
                   allow_int: bool = False) -> Callable:
    """A function returning both ``fun``'s value and its gradient.

    Args:
        fun: a function with a scalar floating output (or ``(output, aux)`` with has_aux).
        argnums: which positional argument(s) to differentiate (int or tuple of ints); each
            may be a pytree of tensors.
        has_aux: ``fun`` returns ``(output, aux)``; aux is returned alongside, undifferentiated.
        allow_int: integer inputs get zero gradients instead of an error.

    Returns:
        A function returning ``(value, grads)`` or ``((value, aux), grads)``; grads mirror the
        structure of the selected argument(s) (a tuple when argnums is a tuple).

    Example:
        >>> f = lambda x: (x ** 3).sum()
        >>> v, g = value_and_grad(f)(taiji.tensor([1.0, 2.0]))
        >>> g
        tensor([ 3., 12.])
    """
    @functools.wraps(fun)
    def vg(*args, **kwargs):
        nums = _argnums_tuple(argnums, len(args), "grad")
        args = list(args)
        per_arg, outer, own, fresh_all = [], False, set(), []
        for i in nums:
            leaves, tree = tree_flatten(args[i])
            fresh, orig = [], []
            for leaf in leaves:
                x = _to_tensor(leaf, "grad")
                if not x.dtype.is_floating_point:
                    if not allow_int:
                        raise TypeError(
                            f"grad requires real-valued inputs (input dtype that is a sub-dtype "
                            f"of floating), but got {x.dtype.name} for argument {i}. If you "
                            f"want to use integer-valued inputs, use vjp or set allow_int to "
                            f"True.")
                    fresh.append(x)
                    orig.append(None)
                    continue
                outer = outer or x._requires_grad
                f = _fresh(x)
                own.add(id(f))
                fresh.append(f)
                orig.append(f)
                fresh_all.append(f)
            per_arg.append((tree, fresh, orig))
            args[i] = tree_unflatten(tree, fresh)
        with _autograd.enable_grad():
            res = fun(*args, **kwargs)
        if has_aux:
            if not (isinstance(res, (tuple, list)) and len(res) == 2):
                raise TypeError(f"has_aux=True requires the function to return a pair "
                                f"(output, aux), got {type(res).__name__}")
            out, aux = res
        else:
            out, aux = res, None
        if not isinstance(out, Tensor):
            raise TypeError(f"Gradient only defined for scalar-output functions. Output was "
                            f"{out!r} of type {type(out).__name__}, not a Tensor.")
        if out.shape != ():
            raise TypeError(f"Gradient only defined for scalar-output functions. Output had "
                            f"shape: {tuple(out.shape)}.")
        if not out.dtype.is_floating_point:
            raise TypeError(f"grad requires real-valued outputs (output dtype that is a "
                            f"sub-dtype of floating), but got {out.dtype.name}.")
        create = STATE.grad_enabled and (outer or _reaches_outside([out], own))
        grads = {}
        if out._requires_grad and fresh_all:
            gs = _autograd.grad(out, fresh_all, retain_graph=create, create_graph=create,
                                allow_unused=True)
            grads = {id(f): g for f, g in zip(fresh_all, gs)}
        results = []
        for tree, fresh, orig in per_arg:
            leaves = []
            for f, o in zip(fresh, orig):
                g = grads.get(id(o)) if o is not None else None
                leaves.append(g if g is not None else _zeros_for(f).detach())
            results.append(tree_unflatten(tree, leaves))
        g = results[0] if isinstance(argnums, int) else tuple(results)
        if not create:
            out, aux = out.detach(), _detach_tree(aux)
        return ((out, aux), g) if has_aux else (out, g)
    return vg


def grad(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False,
         allow_int: bool = False) -> Callable:
    """The gradient of a scalar function (JAX's ``grad``).

    Args:
        fun: a function with a scalar floating output.
        argnums: positional argument(s) to differentiate with respect to.
        has_aux: ``fun`` returns ``(output, aux)``; the result is then ``(grads, aux)``.
        allow_int: integer inputs get zero gradients instead of an error.

    Returns:
        A function with ``fun``'s signature returning the gradient(s).

    Example:
        >>> df = grad(lambda x: (x * x).sum())
        >>> df(taiji.tensor([1.0, 2.0]))
        tensor([2., 4.])
        >>> grad(grad(lambda x: x ** 3))(taiji.tensor(2.0))   # 6x
        tensor(12.)
    """
    vg = value_and_grad(fun, argnums, has_aux, allow_int)

    @functools.wraps(fun)
    def g(*args, **kwargs):
        if has_aux:
            (_, aux), gr = vg(*args, **kwargs)
            return gr, aux
        return vg(*args, **kwargs)[1]
    return g

# ---------------------------------------------------------------- vjp


def vjp(fun: Callable, *primals: Any, has_aux: bool = False):
    """Evaluate ``fun`` and return its pullback (reverse mode, JAX's ``vjp``).

    Args:
        fun: a function of pytrees of tensors returning a pytree of tensors.
        primals: the arguments to evaluate at.
        has_aux: ``fun`` returns ``(output, aux)``.

    Returns:
        ``(out, vjp_fn)`` (or ``(out, vjp_fn, aux)``); ``vjp_fn(cotangent)`` takes a pytree
        shaped like ``out`` and returns a tuple with one cotangent per primal.

    Example:
        >>> y, pull = vjp(lambda x: x * x, taiji.tensor([1.0, 2.0]))
        >>> pull(taiji.ones(2))
        (tensor([2., 4.]),)
    """
    flat, tree = tree_flatten(primals)
    xs = [_to_tensor(x, "vjp") for x in flat]
    outer = any(x._requires_grad for x in xs)
    fresh = [_fresh(x) if x.dtype.is_floating_point else x for x in xs]
    own = {id(f) for f in fresh}
    with _autograd.enable_grad():
        res = fun(*tree_unflatten(tree, fresh))
    if has_aux:
        if not (isinstance(res, (tuple, list)) and len(res) == 2):
            raise TypeError("has_aux=True requires the function to return a pair (output, aux)")
        out, aux = res
    else:
        out, aux = res, None
    out_flat, out_tree = tree_flatten(out)
    for o in out_flat:
        if not isinstance(o, Tensor):
            raise TypeError(f"vjp: the function must return tensors, got a leaf of type "
                            f"{type(o).__name__}")
    keep = STATE.grad_enabled and (outer or _reaches_outside(out_flat, own))
    wrt = [f for f in fresh if f.dtype.is_floating_point]

    def vjp_fn(ct):
        try:
            ct_flat = out_tree.flatten_up_to(ct)
        except ValueError:
            raise TypeError(f"Tree structure of cotangent input {tree_flatten(ct)[1]}, does not "
                            f"match structure of primal output {out_tree}.") from None
        roots, seeds = [], []
        for o, c in zip(out_flat, ct_flat):
            c = _to_tensor(c, "vjp cotangent")
            if tuple(c.shape) != tuple(o.shape):
                raise ValueError(f"Shape of cotangent input to vjp pullback function "
                                 f"{tuple(c.shape)} must be the same as the shape of "
                                 f"corresponding primal output {tuple(o.shape)}.")
            if o._requires_grad and o.dtype.is_floating_point:
                roots.append(o)
                seeds.append(c)
        create = STATE.grad_enabled and (keep or any(c._requires_grad for c in seeds))
        grads = {}
        if roots and wrt:
            gs = _autograd.grad(roots, wrt, grad_outputs=seeds, retain_graph=True,
                                create_graph=create, allow_unused=True)
            grads = {id(f): g for f, g in zip(wrt, gs)}
        leaves = [grads.get(id(f)) if grads.get(id(f)) is not None else _zeros_for(f).detach()
                  for f in fresh]
        return tuple(tree_unflatten(tree, leaves))

    if not keep:
        out, aux = _detach_tree(out), _detach_tree(aux)
    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)

# ---------------------------------------------------------------- jvp and linearize


def jvp(fun: Callable, primals: Sequence, tangents: Sequence, has_aux: bool = False):
    """Evaluate ``fun`` and its directional derivative (forward mode, JAX's ``jvp``).

    Args:
        fun: a function of pytrees of tensors.
        primals: a tuple or list of arguments.
        tangents: a tuple or list with the same structure, shapes and dtypes.
        has_aux: ``fun`` returns ``(output, aux)``.

    Returns:
        ``(out, tangent_out)`` (or ``(out, tangent_out, aux)``).

    Example:
        >>> jvp(lambda x: x.sin(), (taiji.tensor(0.0),), (taiji.tensor(2.0),))
        (tensor(0.), tensor(2.))
    """
    if not isinstance(primals, (tuple, list)):
        raise TypeError(f"primal arguments to jvp must be a tuple or a list; found "
                        f"{type(primals).__name__}.")
    if not isinstance(tangents, (tuple, list)):
        raise TypeError(f"tangent arguments to jvp must be a tuple or a list; found "
                        f"{type(tangents).__name__}.")
    flat_p, tree_p = tree_flatten(tuple(primals))
    flat_t, tree_t = tree_flatten(tuple(tangents))
    if tree_p != tree_t:
        raise TypeError(f"primal and tangent arguments to jvp must have the same tree "
                        f"structure; primals have tree structure {tree_p} whereas tangents "
                        f"have tree structure {tree_t}.")
    interp = JVPInterpreter(STATE.interp)
    wrapped = []
    for k, (p, t) in enumerate(zip(flat_p, flat_t)):
        p = _to_tensor(p, "jvp")
        t = _to_tensor(t, "jvp") if t is not None else None
        if t is not None and tuple(t.shape) != tuple(p.shape):
            raise ValueError(f"jvp called with different primal and tangent shapes: got "
                             f"primal shape {tuple(p.shape)} and tangent shape "
                             f"{tuple(t.shape)} (leaf {k})")
        if not p.dtype.is_floating_point:
            t = None  # integer inputs have no tangent space
        elif t is not None and t.dtype is not p.dtype:
            raise TypeError(f"primal and tangent arguments to jvp do not match; dtypes must "
                            f"be equal. Got primal dtype {p.dtype.name} and so expected "
                            f"tangent dtype {p.dtype.name}, but got tangent dtype "
                            f"{t.dtype.name} instead (leaf {k}).")
        wrapped.append(Tensor._from_payload(JVPTracer(interp, p, t)))
    with set_interpreter(interp):
        res = fun(*tree_unflatten(tree_p, wrapped))
    if has_aux:
        res, aux = res
    out_flat, out_tree = tree_flatten(res)
    ps, ts = [], []
    for o in out_flat:
        p, t = _unwrap_jvp(interp, o)
        ps.append(p)
        ts.append(t)
    out, tout = tree_unflatten(out_tree, ps), tree_unflatten(out_tree, ts)
    if has_aux:
        aux = tree_map(lambda o: _unwrap_jvp(interp, o)[0], aux)
        return out, tout, aux
    return out, tout


def _unwrap_jvp(interp, o):
    if not isinstance(o, Tensor):
        return o, (0.0 if isinstance(o, (int, float)) else None)
    p = o._data
    if type(p) is JVPTracer and p.interp is interp:
        t = p.tangent
        return p.primal, (t if t is not None else p.primal.zeros_like())
    return o, o.zeros_like()


def linearize(fun: Callable, *primals: Any):
    """``fun``'s value and a function evaluating its JVP at ``primals`` (JAX's
    ``linearize``; here the JVP is recomputed on each call).

    Returns:
        ``(out, f_jvp)`` where ``f_jvp(*tangents)`` is the output tangent.

    Example:
        >>> y, lin = linearize(lambda x: x * x, taiji.tensor(3.0))
        >>> lin(taiji.tensor(1.0))
        tensor(6.)
    """
    out = jvp(fun, primals, tuple(tree_map(lambda p: _to_tensor(p).zeros_like(), primals)))[0]

    def f_jvp(*tangents):
        return jvp(fun, primals, tangents)[1]
    return out, f_jvp

# ---------------------------------------------------------------- Jacobians


def _partial(fun, args, nums, kwargs):
    """``fun`` as a function of the arguments at ``nums`` only."""
    def g(*dyn):
        a = list(args)
        for i, v in zip(nums, dyn):
            a[i] = v
        return fun(*a, **kwargs)
    return g


def jacrev(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """The Jacobian of ``fun`` by reverse mode: one vmapped pullback over the output basis.

    Args:
        fun: a function of tensors (pytrees allowed) returning a pytree of tensors.
        argnums: the positional argument(s) to differentiate with respect to.
        has_aux: ``fun`` returns ``(output, aux)``.

    Returns:
        A function returning, for each output leaf, ``out.shape + in.shape`` arrays arranged
        in the input structure (a tuple over argnums when argnums is a tuple).

    Example:
        >>> jacrev(lambda x: x * x)(taiji.tensor([1.0, 2.0]))
        tensor([[2., 0.],
                [0., 4.]])
    """
    @functools.wraps(fun)
    def jac(*args, **kwargs):
        nums = _argnums_tuple(argnums, len(args), "jacrev")
        dyn = [args[i] for i in nums]
        res = vjp(_partial(fun, args, nums, kwargs), *dyn, has_aux=has_aux)
        out, pull = res[0], res[1]
        out_flat, out_tree = tree_flatten(out)
        sizes = [o.numel() for o in out_flat]
        total = sum(sizes)
        basis = []
        start = 0
        for o, n in zip(out_flat, sizes):
            e = np.zeros((total, n), dtype=o.dtype.np)
            e[start:start + n] = np.eye(n, dtype=o.dtype.np)
            basis.append(O.const(e.reshape((total,) + tuple(o.shape)), o))
            start += n
        cts = vmap(pull)(tree_unflatten(out_tree, basis))  # tuple over dyn args
        per_arg = [tree_flatten(c) for c in cts]
        blocks = []
        start = 0
        for o, n in zip(out_flat, sizes):
            arg_trees = []
            for leaves, tree in per_arg:
                arg_trees.append(tree_unflatten(tree, [
                    l.narrow(0, start, n).reshape(tuple(o.shape) + tuple(l.shape[1:]))
                    for l in leaves]))
            blocks.append(arg_trees[0] if isinstance(argnums, int) else tuple(arg_trees))
            start += n
        result = tree_unflatten(out_tree, blocks)
        return (result, res[2]) if has_aux else result
    return jac


jacobian = jacrev


def jacfwd(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """The Jacobian of ``fun`` by forward mode: one vmapped jvp over the input basis.

    Args:
        fun: a function of tensors (pytrees allowed) returning a pytree of tensors.
        argnums: the positional argument(s) to differentiate with respect to.
        has_aux: ``fun`` returns ``(output, aux)``.

    Returns:
        Like `jacrev`: ``out.shape + in.shape`` per (output leaf, input leaf).

    Example:
        >>> jacfwd(lambda x: x.sum() * x)(taiji.tensor([1.0, 2.0]))
        tensor([[4., 1.],
                [2., 5.]])
    """
    @functools.wraps(fun)
    def jac(*args, **kwargs):
        nums = _argnums_tuple(argnums, len(args), "jacfwd")
        dyn = tuple(args[i] for i in nums)
        flat, tree = tree_flatten(dyn)
        xs = [_to_tensor(x, "jacfwd") for x in flat]
        for x in xs:
            if not x.dtype.is_floating_point:
                raise TypeError(f"jacfwd requires real-valued inputs (input dtype that is a "
                                f"sub-dtype of floating), but got {x.dtype.name}.")
        sizes = [x.numel() for x in xs]
        total = sum(sizes)
        basis, start = [], 0
        for x, n in zip(xs, sizes):
            e = np.zeros((total, n), dtype=x.dtype.np)
            e[start:start + n] = np.eye(n, dtype=x.dtype.np)
            basis.append(O.const(e.reshape((total,) + tuple(x.shape)), x))
            start += n
        g = _partial(fun, args, nums, kwargs)
        primals = tree_unflatten(tree, xs)

        def push(*ts):
            r = jvp(g, primals, tree_unflatten(tree, list(ts)), has_aux=has_aux)
            return (r[1], r[2]) if has_aux else r[1]
        res = vmap(push, out_axes=-1)(*basis)
        tout, aux = (res[0], res[1]) if has_aux else (res, None)
        out_flat, out_tree = tree_flatten(tout)
        blocks = []
        for o in out_flat:  # o: out.shape + (total,)
            oshape = tuple(o.shape[:-1])
            parts, start = [], 0
            for x, n in zip(xs, sizes):
                parts.append(o.narrow(-1, start, n).reshape(oshape + tuple(x.shape)))
                start += n
            per_arg = tree_unflatten(tree, parts)
            blocks.append(per_arg[0] if isinstance(argnums, int) else tuple(per_arg))
        result = tree_unflatten(out_tree, blocks)
        if has_aux:
            aux = tree_map(lambda a: a.select(-1, 0) if isinstance(a, Tensor) else a, aux)
            return result, aux
        return result
    return jac


def hessian(fun: Callable, argnums: int | Sequence[int] = 0, has_aux: bool = False) -> Callable:
    """The Hessian of a scalar function: ``jacfwd(jacrev(fun))``.

    Example:
        >>> hessian(lambda x: (x ** 3).sum())(taiji.tensor([1.0, 2.0]))
        tensor([[ 6.,  0.],
                [ 0., 12.]])
    """
    return jacfwd(jacrev(fun, argnums, has_aux), argnums, has_aux)

# ---------------------------------------------------------------- vmap


def _leaf_paths(tree: PyTreeDef, prefix: str) -> list:
    """A readable path for every leaf position of ``tree`` (for error messages)."""
    if tree.node_type is None:
        return [prefix]
    keys = tree.aux if tree.node_type is dict else None
    out = []
    for i, c in enumerate(tree.children):
        out.extend(_leaf_paths(c, f"{prefix}[{keys[i]!r}]" if keys else f"{prefix}[{i}]"))
    return out


def _arg_names(fun, nargs: int) -> list:
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        params = []
    names = []
    for i in range(nargs):
        if i < len(params) and params[i].kind in (params[i].POSITIONAL_ONLY,
                                                  params[i].POSITIONAL_OR_KEYWORD):
            names.append(params[i].name)
        else:
            names.append(f"args[{i}]")
    return names


def vmap(fun: Callable, in_axes: Any = 0, out_axes: Any = 0,
         axis_size: int | None = None) -> Callable:
    """Vectorise ``fun`` over a leading (or chosen) axis of its arguments (JAX's ``vmap``).

    Args:
        fun: a function of pytrees of tensors.
        in_axes: an int, None (not mapped), or a tuple with one entry per positional
            argument, each an int/None or a pytree prefix of that argument. Keyword arguments
            are always mapped over axis 0.
        out_axes: where the mapped axis goes in each output (int, None, or a pytree prefix).
        axis_size: the batch size, needed only when no argument is mapped.

    Returns:
        The batched function.

    Example:
        >>> vmap(lambda a, b: a @ b, in_axes=(0, None))(taiji.ones(5, 2, 3), taiji.ones(3))
        ... # shape [5, 2]
    """
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    _check_axes_spec(in_axes, "in_axes")
    _check_axes_spec(out_axes, "out_axes")

    @functools.wraps(fun)
    def batched(*args, **kwargs):
        if isinstance(in_axes, tuple) and len(in_axes) != len(args):
            raise ValueError(f"vmap in_axes must be an int, None, or a tuple of entries "
                             f"corresponding to the positional arguments passed to the "
                             f"function, but got len(in_axes)={len(in_axes)}, "
                             f"len(args)={len(args)}")
        spec = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
        names = _arg_names(fun, len(args))
        axes, leaves, paths = [], [], []
        for i, a in enumerate(args):
            lv, tr = tree_flatten(a)
            axes.extend(broadcast_prefix(spec[i], a, f"vmap in_axes[{i}]"))
            leaves.extend(lv)
            paths.extend(_leaf_paths(tr, names[i]))
        kw_leaves, kw_tree = tree_flatten(kwargs)
        leaves.extend(kw_leaves)
        axes.extend([0] * len(kw_leaves))
        paths.extend(_leaf_paths(kw_tree, "kwargs"))
        mapped = []  # (index, tensor, axis)
        for k, (leaf, ax, path) in enumerate(zip(leaves, axes, paths)):
            if ax is None:
                continue
            t = _to_tensor(leaf, "vmap")
            if not -t.ndim <= ax < t.ndim or t.ndim == 0:
                raise ValueError(
                    f"vmap was requested to map its argument along axis {ax}, which implies "
                    f"that its rank should be at least {ax + 1 if ax >= 0 else -ax}, but is "
                    f"only {t.ndim} (its shape is {tuple(t.shape)}): argument {path}")
            mapped.append((k, t, ax % t.ndim))
        sizes = {t.shape[ax] for _, t, ax in mapped}
        if axis_size is not None:
            sizes.add(axis_size)
        if not mapped and axis_size is None:
            raise ValueError("vmap must have at least one non-None value in in_axes "
                             "(or pass axis_size=)")
        if len(sizes) > 1:
            lines = [f"  * axis {ax} of argument {paths[k]} of type {_aval(t)} has size "
                     f"{t.shape[ax]}" for k, t, ax in mapped]
            if axis_size is not None:
                lines.append(f"  * axis_size={axis_size}")
            raise ValueError("vmap got inconsistent sizes for array axes to be mapped:\n"
                             + "\n".join(lines))
        size = sizes.pop()
        interp = BatchInterpreter(size, STATE.interp)
        new = list(leaves)
        for k, t, ax in mapped:
            new[k] = Tensor._from_payload(BatchTracer(interp, t, ax))
        n_pos = len(leaves) - len(kw_leaves)
        pos, start = [], 0
        for a in args:
            n = len(tree_flatten(a)[0])
            pos.append(tree_unflatten(tree_flatten(a)[1], new[start:start + n]))
            start += n
        kw = tree_unflatten(kw_tree, new[n_pos:])
        with set_interpreter(interp):
            out = fun(*pos, **kw)
        out_flat, out_tree = tree_flatten(out)
        oaxes = broadcast_prefix(out_axes, out, "vmap out_axes")
        res = [_unbatch(interp, o, ax) for o, ax in zip(out_flat, oaxes)]
        return tree_unflatten(out_tree, res)
    return batched


def _check_axes_spec(spec, what):
    for leaf in tree_flatten(spec, is_leaf=lambda x: x is None)[0]:
        if leaf is not None and not isinstance(leaf, int):
            raise TypeError(f"vmap {what} must be an int, None, or a (nested) container with "
                            f"those types as leaves, but got {spec!r}")


def _unbatch(interp: BatchInterpreter, o, ax):
    """The parent-level value of output ``o`` with its batch axis at ``ax``."""
    if isinstance(o, Tensor) and type(o._data) is BatchTracer and o._data.interp is interp:
        val, d = o._data.val, o._data.bdim
    elif isinstance(o, Tensor):
        val, d = o, None
    else:
        if ax is None:
            return o
        val, d = _to_tensor(o, "vmap output"), None
    if ax is None:
        if d is not None:
            raise ValueError(f"vmap has mapped output (of type {_aval(val)}) but out_axes is "
                             f"None: the output differs across the vmapped axis")
        return val
    if d is None:
        val = val.unsqueeze(0).expand((interp.axis_size,) + tuple(val.shape))
        d = 0
    nd = val.ndim
    if not -nd <= ax < nd:
        raise ValueError(f"vmap out_axes={ax} is out of range for an output of rank "
                         f"{nd - 1} (with the mapped axis, {nd})")
    ax %= nd
    return val if ax == d else val.movedim(d, ax)
