"""Public pytree utilities (JAX's ``jax.tree_util``): flatten, unflatten, map, register.

Example:
    >>> from taiji import tree_util
    >>> tree_util.tree_map(lambda x: x * 2, {"a": 1, "b": (2, 3)})
    {'a': 2, 'b': (4, 6)}
"""
from taiji._tree import (  # noqa: F401
    PyTreeDef, tree_flatten, tree_unflatten, tree_leaves, tree_structure, tree_map, tree_all,
    tree_reduce, register_pytree_node, register_pytree_node_class, register_dataclass,
    register_static, register_lookup_hook, treedef_is_leaf, all_leaves,
)

__all__ = ["PyTreeDef", "tree_flatten", "tree_unflatten", "tree_leaves", "tree_structure",
           "tree_map", "tree_all", "tree_reduce", "register_pytree_node",
           "register_pytree_node_class", "register_dataclass", "register_static",
           "register_lookup_hook", "treedef_is_leaf", "all_leaves"]
