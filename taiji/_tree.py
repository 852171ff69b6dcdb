"""Pytrees: nested containers of leaves (JAX's tree_util).

A pytree is a leaf or a registered container of pytrees. Built in: tuple, list, dict (keys
sorted, as JAX does), OrderedDict and defaultdict, namedtuples, dataclasses, and None (a
container with no children). Anything else is a leaf (Tensors, arrays, numbers, strings).

`tree_flatten` returns the leaves and a `PyTreeDef`: a hashable, comparable description of
the containers, which `jit` uses in its cache keys and `vmap` uses to match `in_axes`.
Modules defined later (``taiji.nn.Module``) register with `register_pytree_node`, or add a
lookup hook with `register_lookup_hook` for whole class families.
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Any, Callable, Iterable, NamedTuple

__all__ = ["PyTreeDef", "tree_flatten", "tree_unflatten", "tree_leaves", "tree_structure",
           "tree_map", "tree_all", "tree_reduce", "register_pytree_node",
           "register_pytree_node_class", "register_dataclass", "register_static",
           "register_lookup_hook", "treedef_is_leaf", "all_leaves"]


class _Node(NamedTuple):
    """How to take a container apart and put it back together."""
    flatten: Callable[[Any], tuple]        # x -> (children, aux_data)
    unflatten: Callable[[Any, list], Any]  # (aux_data, children) -> x


_REGISTRY: dict[type, _Node] = {}
_LOOKUP_HOOKS: list[Callable[[type], "_Node | None"]] = []


def register_pytree_node(nodetype: type, flatten_func: Callable, unflatten_func: Callable) -> None:
    """Make ``nodetype`` a pytree container.

    Args:
        nodetype: the class to register.
        flatten_func: ``x -> (children, aux_data)``; ``aux_data`` must be hashable and is
            compared when treedefs are compared.
        unflatten_func: ``(aux_data, children) -> x``.

    Example:
        >>> class Pair:
        ...     def __init__(self, a, b): self.a, self.b = a, b
        >>> register_pytree_node(Pair, lambda p: ((p.a, p.b), None),
        ...                      lambda aux, ch: Pair(*ch))
    """
    if nodetype in _REGISTRY:
        raise ValueError(f"{nodetype.__name__} is already registered as a pytree node")
    _REGISTRY[nodetype] = _Node(flatten_func, unflatten_func)


def register_pytree_node_class(cls: type) -> type:
    """Class decorator: register ``cls`` using its ``tree_flatten`` method and its
    ``tree_unflatten`` classmethod (JAX's convention).

    Example:
        >>> @register_pytree_node_class
        ... class Box:
        ...     def __init__(self, v): self.v = v
        ...     def tree_flatten(self): return (self.v,), None
        ...     @classmethod
        ...     def tree_unflatten(cls, aux, ch): return cls(*ch)
    """
    register_pytree_node(cls, lambda x: x.tree_flatten(), cls.tree_unflatten)
    return cls


def register_dataclass(cls: type, data_fields: Iterable[str] | None = None,
                       meta_fields: Iterable[str] | None = None) -> type:
    """Register a dataclass: ``data_fields`` are children, ``meta_fields`` are static
    (hashable, part of the treedef). By default every field is a child.

    Example:
        >>> @dataclasses.dataclass
        ... class Params:
        ...     w: Any
        ...     name: str
        >>> register_dataclass(Params, data_fields=["w"], meta_fields=["name"])
    """
    if data_fields is None:
        meta = tuple(meta_fields or ())
        data = tuple(f.name for f in dataclasses.fields(cls) if f.name not in meta)
    else:
        data = tuple(data_fields)
        meta = tuple(meta_fields or ())

    def flatten(x):
        return [getattr(x, n) for n in data], tuple(getattr(x, n) for n in meta)

    def unflatten(aux, children):
        kw = dict(zip(data, children))
        kw.update(zip(meta, aux))
        obj = object.__new__(cls)
        for k, v in kw.items():  # works for frozen dataclasses too
            object.__setattr__(obj, k, v)
        return obj

    register_pytree_node(cls, flatten, unflatten)
    return cls


def register_static(cls: type) -> type:
    """Register ``cls`` as a container with no children: its instances become part of the
    treedef (they must be hashable), never leaves."""
    register_pytree_node(cls, lambda x: ((), x), lambda aux, _: aux)
    return cls


def register_lookup_hook(hook: Callable[[type], "tuple[Callable, Callable] | None"]) -> None:
    """Add ``hook(type) -> (flatten, unflatten) | None``, consulted for unregistered types
    (lets a later module, such as ``taiji.nn``, claim whole class families)."""
    _LOOKUP_HOOKS.append(hook)
    _NODE_CACHE.clear()


# ---------------------------------------------------------------- built-in containers

def _dict_flatten(d):
    keys = _sorted_keys(d)
    return [d[k] for k in keys], tuple(keys)


def _sorted_keys(d):
    try:
        return sorted(d)
    except TypeError:  # mixed key types: order by (type name, repr), deterministically
        return sorted(d, key=lambda k: (type(k).__name__, repr(k)))


_REGISTRY[tuple] = _Node(lambda t: (list(t), None), lambda _, ch: tuple(ch))
_REGISTRY[list] = _Node(lambda t: (list(t), None), lambda _, ch: list(ch))
_REGISTRY[dict] = _Node(_dict_flatten, lambda keys, ch: dict(zip(keys, ch)))
_REGISTRY[collections.OrderedDict] = _Node(
    lambda d: (list(d.values()), tuple(d.keys())),
    lambda keys, ch: collections.OrderedDict(zip(keys, ch)))
_REGISTRY[collections.defaultdict] = _Node(
    lambda d: (_dict_flatten(d)[0], (d.default_factory, _dict_flatten(d)[1])),
    lambda aux, ch: collections.defaultdict(aux[0], zip(aux[1], ch)))
_REGISTRY[type(None)] = _Node(lambda _: ((), None), lambda _, ch: None)

_NODE_CACHE: dict[type, "_Node | None"] = {}


def _namedtuple_node(cls):
    return _Node(lambda t: (list(t), None), lambda _, ch: cls(*ch))


def _dataclass_node(cls):
    names = tuple(f.name for f in dataclasses.fields(cls))

    def unflatten(_, children):
        obj = object.__new__(cls)
        for k, v in zip(names, children):
            object.__setattr__(obj, k, v)
        return obj
    return _Node(lambda x: ([getattr(x, n) for n in names], None), unflatten)


def _node_for(typ: type) -> "_Node | None":
    node = _REGISTRY.get(typ)
    if node is not None:
        return node
    if typ in _NODE_CACHE:
        return _NODE_CACHE[typ]
    node = None
    for hook in _LOOKUP_HOOKS:
        r = hook(typ)
        if r is not None:
            node = _Node(*r)
            break
    if node is None:
        if issubclass(typ, tuple) and hasattr(typ, "_fields"):
            node = _namedtuple_node(typ)
        elif dataclasses.is_dataclass(typ):
            node = _dataclass_node(typ)
    _NODE_CACHE[typ] = node
    return node


# ---------------------------------------------------------------- treedefs

class PyTreeDef:
    """The structure of a pytree: container types, their static data, and where leaves go.

    Treedefs compare equal when the structures are the same, and hash accordingly.
    """

    __slots__ = ("node_type", "aux", "children", "num_leaves", "_hash")

    def __init__(self, node_type, aux, children: tuple):
        self.node_type = node_type  # None for a leaf
        self.aux = aux
        self.children = children
        self.num_leaves = 1 if node_type is None else sum(c.num_leaves for c in children)
        self._hash = None

    @property
    def num_nodes(self) -> int:
        return 1 + sum(c.num_nodes for c in self.children)

    def _key(self):
        return (self.node_type, _hashable(self.aux), self.children)

    def __eq__(self, other) -> bool:
        if self is other:
            return True
        if not isinstance(other, PyTreeDef):
            return NotImplemented
        return (self.node_type is other.node_type and self.num_leaves == other.num_leaves
                and len(self.children) == len(other.children)
                and _aux_equal(self.aux, other.aux) and self.children == other.children)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(self._key())
        return self._hash

    def unflatten(self, leaves: Iterable) -> Any:
        """Rebuild a tree of this structure from ``leaves``."""
        leaves = list(leaves)
        if len(leaves) != self.num_leaves:
            raise ValueError(f"tree_unflatten: the treedef {self} expects {self.num_leaves} "
                             f"leaves, got {len(leaves)}")
        it = iter(leaves)
        return self._build(it)

    def _build(self, it):
        if self.node_type is None:
            return next(it)
        node = _node_for(self.node_type)
        return node.unflatten(self.aux, [c._build(it) for c in self.children])

    def flatten_up_to(self, tree: Any) -> list:
        """The subtrees of ``tree`` at this treedef's leaf positions (``tree`` must have this
        structure as a prefix)."""
        out: list = []
        self._up_to(tree, out, "tree")
        return out

    def _up_to(self, tree, out, path):
        if self.node_type is None:
            out.append(tree)
            return
        if type(tree) is not self.node_type:
            raise ValueError(f"pytree structure mismatch at {path}: expected "
                             f"{self.node_type.__name__}, got {type(tree).__name__} "
                             f"(expected structure {self})")
        children, aux = _node_for(self.node_type).flatten(tree)
        children = list(children)
        if len(children) != len(self.children) or not _aux_equal(aux, self.aux):
            raise ValueError(f"pytree structure mismatch at {path}: expected "
                             f"{len(self.children)} children with {self.aux!r}, got "
                             f"{len(children)} with {aux!r}")
        keys = aux if self.node_type in (dict, collections.OrderedDict) else None
        for i, (c, sub) in enumerate(zip(self.children, children)):
            c._up_to(sub, out, f"{path}[{keys[i]!r}]" if keys else f"{path}[{i}]")

    def __repr__(self) -> str:
        return f"PyTreeDef({self._str()})"

    def _str(self) -> str:
        t = self.node_type
        if t is None:
            return "*"
        ch = [c._str() for c in self.children]
        if t is type(None):
            return "None"
        if t is tuple:
            return "(" + ", ".join(ch) + ("," if len(ch) == 1 else "") + ")"
        if t is list:
            return "[" + ", ".join(ch) + "]"
        if t is dict:
            return "{" + ", ".join(f"{k!r}: {c}" for k, c in zip(self.aux, ch)) + "}"
        return f"CustomNode({t.__name__}[{self.aux!r}], [{', '.join(ch)}])"


def _hashable(aux):
    try:
        hash(aux)
        return aux
    except TypeError:
        return repr(aux)


def _aux_equal(a, b) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays in aux data: compare by identity
        return a is b


_LEAF = PyTreeDef(None, None, ())


def _flatten(x, leaves, is_leaf):
    if is_leaf is not None and is_leaf(x):
        leaves.append(x)
        return _LEAF
    node = _node_for(type(x))
    if node is None:
        leaves.append(x)
        return _LEAF
    children, aux = node.flatten(x)
    return PyTreeDef(type(x), aux, tuple(_flatten(c, leaves, is_leaf) for c in children))


# ---------------------------------------------------------------- the public functions

def tree_flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None
                 ) -> tuple[list, PyTreeDef]:
    """The leaves of ``tree`` (left to right; dict values in sorted-key order) and its
    structure.

    Args:
        tree: a pytree.
        is_leaf: optional predicate; subtrees for which it returns True are leaves.

    Returns:
        ``(leaves, treedef)``.

    Example:
        >>> tree_flatten({"b": 2, "a": (1, None)})
        ([1, 2], PyTreeDef({'a': (*, None), 'b': *}))
    """
    leaves: list = []
    treedef = _flatten(tree, leaves, is_leaf)
    return leaves, treedef


def tree_unflatten(treedef: PyTreeDef, leaves: Iterable) -> Any:
    """Rebuild the tree described by ``treedef`` from ``leaves``.

    Example:
        >>> leaves, td = tree_flatten([1, (2, 3)])
        >>> tree_unflatten(td, [x * 10 for x in leaves])
        [10, (20, 30)]
    """
    return treedef.unflatten(leaves)


def tree_leaves(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list:
    """The leaves of ``tree``, left to right.

    Example:
        >>> tree_leaves({"x": [1, 2], "y": None})
        [1, 2]
    """
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> PyTreeDef:
    """The treedef of ``tree``.

    Example:
        >>> tree_structure((1, 2)) == tree_structure((3, 4))
        True
    """
    return tree_flatten(tree, is_leaf)[1]


def tree_map(f: Callable, tree: Any, *rest: Any,
             is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """Apply ``f`` to the leaves of ``tree`` (and the matching subtrees of ``rest``).

    Args:
        f: called as ``f(leaf, *matching_leaves_of_rest)``.
        tree: the pytree whose structure the result has.
        rest: trees with ``tree``'s structure (or with it as a prefix).
        is_leaf: optional leaf predicate.

    Returns:
        A tree of ``tree``'s structure holding ``f``'s results.

    Example:
        >>> tree_map(lambda a, b: a + b, {"x": 1, "y": 2}, {"x": 10, "y": 20})
        {'x': 11, 'y': 22}
    """
    leaves, treedef = tree_flatten(tree, is_leaf)
    others = [treedef.flatten_up_to(r) for r in rest]
    return treedef.unflatten(f(*xs) for xs in zip(leaves, *others))


def tree_all(tree: Any) -> bool:
    """True when every leaf is truthy."""
    return all(tree_leaves(tree))


def tree_reduce(function: Callable, tree: Any, *initializer: Any) -> Any:
    """``functools.reduce`` over the leaves of ``tree``."""
    import functools
    return functools.reduce(function, tree_leaves(tree), *initializer)


def treedef_is_leaf(treedef: PyTreeDef) -> bool:
    """True for the treedef of a single leaf."""
    return treedef.node_type is None


def all_leaves(iterable: Iterable) -> bool:
    """True when every element of ``iterable`` is a leaf."""
    return all(_node_for(type(x)) is None for x in iterable)


def broadcast_prefix(prefix: Any, tree: Any, what: str = "argument",
                     is_leaf: Callable[[Any], bool] | None = None) -> list:
    """For each leaf of ``tree``, the leaf of ``prefix`` above it (``prefix`` is a tree
    prefix of ``tree``; used for ``vmap``'s in_axes/out_axes). A None in ``prefix`` is a
    leaf here, covering a whole subtree."""
    p_leaves, p_def = tree_flatten(prefix, is_leaf=lambda x: x is None)
    try:
        subtrees = p_def.flatten_up_to(tree)
    except ValueError as e:
        raise ValueError(f"{what} specification must be a tree prefix of the corresponding "
                         f"value, got specification {prefix!r} for value tree "
                         f"{tree_structure(tree, is_leaf)}: {e}") from None
    out = []
    for p, sub in zip(p_leaves, subtrees):
        out.extend([p] * tree_structure(sub, is_leaf).num_leaves)
    return out

