"""Pytree utilities: flatten/unflatten round trips, treedef equality, registration."""
import collections
import dataclasses

import pytest

from taiji import tree_util as tu


Point = collections.namedtuple("Point", ["x", "y"])


def test_flatten_orders_dict_keys_and_skips_none():
    leaves, td = tu.tree_flatten({"b": 2, "a": (1, None), "c": [3, {"z": 5, "y": 4}]})
    assert leaves == [1, 2, 3, 4, 5]
    assert td.num_leaves == 5
    assert tu.tree_unflatten(td, leaves) == {"b": 2, "a": (1, None), "c": [3, {"z": 5, "y": 4}]}


def test_round_trip_containers():
    tree = (Point(1, [2, 3]), collections.OrderedDict([("q", 4), ("p", 5)]), None, "s")
    leaves, td = tu.tree_flatten(tree)
    assert leaves == [1, 2, 3, 4, 5, "s"]  # OrderedDict keeps insertion order
    back = tu.tree_unflatten(td, leaves)
    assert back == tree and type(back[0]) is Point and type(back[1]) is collections.OrderedDict


def test_treedef_equality_and_hash():
    a = tu.tree_structure({"w": 1.0, "b": [1, 2]})
    b = tu.tree_structure({"b": [7, 8], "w": 3})
    c = tu.tree_structure({"w": 1.0, "b": [1, 2, 3]})
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert len({a, b, c}) == 2
    assert tu.tree_structure((1,)) != tu.tree_structure([1])
    assert "PyTreeDef" in repr(a) and "'b'" in repr(a)


def test_tree_map_multiple_trees_and_is_leaf():
    r = tu.tree_map(lambda a, b: a + b, {"x": 1, "y": (2, 3)}, {"x": 10, "y": (20, 30)})
    assert r == {"x": 11, "y": (22, 33)}
    r = tu.tree_map(lambda p: p.x * p.y, [Point(2, 3), Point(4, 5)],
                    is_leaf=lambda n: isinstance(n, Point))
    assert r == [6, 20]
    with pytest.raises(ValueError, match="structure mismatch"):
        tu.tree_map(lambda a, b: a, (1, 2), (1, 2, 3))


def test_leaves_and_none():
    assert tu.tree_leaves([None, (None,), {}]) == []
    assert tu.tree_leaves(5) == [5]
    assert tu.treedef_is_leaf(tu.tree_structure(5))
    assert not tu.treedef_is_leaf(tu.tree_structure(None))


def test_dataclass_auto_and_registered():
    @dataclasses.dataclass
    class Auto:
        a: int
        b: tuple

    leaves, td = tu.tree_flatten(Auto(1, (2, 3)))
    assert leaves == [1, 2, 3]
    assert tu.tree_unflatten(td, [4, 5, 6]) == Auto(4, (5, 6))

    @dataclasses.dataclass(frozen=True)
    class Params:
        w: float
        name: str

    tu.register_dataclass(Params, data_fields=["w"], meta_fields=["name"])
    leaves, td = tu.tree_flatten(Params(1.5, "lin"))
    assert leaves == [1.5]
    assert tu.tree_unflatten(td, [2.5]) == Params(2.5, "lin")
    assert td != tu.tree_structure(Params(1.5, "other"))  # static data is part of the treedef


def test_register_pytree_node_and_class():
    class Pair:
        def __init__(self, a, b):
            self.a, self.b = a, b

    tu.register_pytree_node(Pair, lambda p: ((p.a, p.b), "tag"), lambda aux, ch: Pair(*ch))
    out = tu.tree_map(lambda v: v * 2, Pair(1, [2]))
    assert isinstance(out, Pair) and out.a == 2 and out.b == [4]
    with pytest.raises(ValueError, match="already registered"):
        tu.register_pytree_node(Pair, lambda p: ((), None), lambda a, c: None)

    @tu.register_pytree_node_class
    class Box:
        def __init__(self, v):
            self.v = v

        def tree_flatten(self):
            return (self.v,), None

        @classmethod
        def tree_unflatten(cls, aux, ch):
            return cls(*ch)

    assert tu.tree_leaves([Box(3), Box(4)]) == [3, 4]


def test_lookup_hook_for_later_modules():
    class Base:
        pass

    class Child(Base):
        def __init__(self, p):
            self.p = p

    tu.register_lookup_hook(lambda t: (lambda m: ((m.p,), type(m)),
                                       lambda aux, ch: aux(*ch)) if issubclass(t, Base) else None)
    leaves, td = tu.tree_flatten({"m": Child(7)})
    assert leaves == [7]
    assert tu.tree_unflatten(td, [8])["m"].p == 8


def test_unflatten_wrong_count():
    td = tu.tree_structure((1, 2))
    with pytest.raises(ValueError, match="expects 2 leaves, got 3"):
        tu.tree_unflatten(td, [1, 2, 3])


def test_reduce_and_all():
    assert tu.tree_reduce(lambda a, b: a + b, {"a": 1, "b": [2, 3]}) == 6
    assert tu.tree_all([True, (1, 2)]) and not tu.tree_all([True, 0])
