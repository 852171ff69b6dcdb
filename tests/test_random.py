"""PyTorch-style randomness: manual_seed reproducibility, Generator objects, RNG state and
distribution sanity."""
import numpy as np
import pytest

import taiji


def _draws(generator=None):
    kw = {} if generator is None else {"generator": generator}
    return [
        taiji.rand(3, 2, **kw),
        taiji.randn(4, **kw),
        taiji.randint(0, 100, (5,), **kw),
        taiji.randperm(10, **kw),
        taiji.empty(6).normal_(**kw),
        taiji.empty(6).uniform_(2.0, 3.0, **kw),
        taiji.normal(1.0, 2.0, (3,), **kw),
        taiji.rand(2, dtype=taiji.float64, **kw),
    ]


def _as_lists(ts):
    return [t.tolist() for t in ts]


def test_manual_seed_reproduces_every_random_call():
    taiji.manual_seed(1234)
    a = _as_lists(_draws())
    taiji.manual_seed(1234)
    b = _as_lists(_draws())
    assert a == b
    taiji.manual_seed(1235)
    c = _as_lists(_draws())
    for x, y in zip(a, c):
        assert x != y  # a different seed gives different numbers for every call


def test_consecutive_draws_differ():
    taiji.manual_seed(0)
    a, b = taiji.rand(8), taiji.rand(8)
    assert a.tolist() != b.tolist()
    x = taiji.empty(8).normal_()
    y = taiji.empty(8).normal_()
    assert x.tolist() != y.tolist()


def test_manual_seed_returns_generator_and_sets_initial_seed():
    g = taiji.manual_seed(42)
    assert isinstance(g, taiji.Generator)
    assert taiji.initial_seed() == 42


def test_generator_is_independent_of_global():
    taiji.manual_seed(7)
    expected = taiji.rand(5).tolist()
    taiji.manual_seed(7)
    g = taiji.Generator().manual_seed(99)
    from_g = taiji.randn(5, generator=g)       # must not advance the global generator
    taiji.empty(3).uniform_(generator=g)
    assert taiji.rand(5).tolist() == expected
    g2 = taiji.Generator().manual_seed(99)
    assert taiji.randn(5, generator=g2).tolist() == from_g.tolist()


def test_generators_with_same_seed_agree_and_with_global():
    g1 = taiji.Generator().manual_seed(5)
    g2 = taiji.Generator().manual_seed(5)
    assert _as_lists(_draws(g1)) == _as_lists(_draws(g2))
    taiji.manual_seed(5)
    g3 = taiji.Generator().manual_seed(5)
    assert _as_lists(_draws()) == _as_lists(_draws(g3))


def test_generator_initial_seed_and_state_roundtrip():
    g = taiji.Generator().manual_seed(11)
    assert g.initial_seed() == 11
    st = g.get_state()
    a = taiji.rand(4, generator=g).tolist()
    g.set_state(st)
    assert taiji.rand(4, generator=g).tolist() == a


def test_get_set_rng_state_roundtrip():
    taiji.manual_seed(3)
    taiji.rand(2)
    state = taiji.get_rng_state()
    a = _as_lists(_draws())
    taiji.set_rng_state(state)
    assert _as_lists(_draws()) == a


def test_get_rng_state_is_a_copy():
    taiji.manual_seed(3)
    state = taiji.get_rng_state()
    saved = state.tolist()
    taiji.rand(10)
    assert state.tolist() == saved  # drawing must not mutate a state handed out earlier
    assert taiji.get_rng_state().tolist() != saved


def test_set_rng_state_rejects_garbage():
    with pytest.raises(TypeError, match="PRNG key"):
        taiji.set_rng_state(taiji.tensor([1.0, 2.0]))


def test_normal_distribution_moments():
    taiji.manual_seed(0)
    for d in (taiji.float32, taiji.float64):
        n = taiji.randn(100_000, dtype=d).numpy().astype(np.float64)
        assert abs(n.mean()) < 0.02, d
        assert abs(n.std() - 1.0) < 0.02, d
        # tails: about 4.55% beyond 2 sigma
        assert abs(np.mean(np.abs(n) > 2) - 0.0455) < 0.005, d


def test_normal_with_mean_std():
    taiji.manual_seed(0)
    n = taiji.normal(2.0, 3.0, (100_000,)).numpy()
    assert abs(n.mean() - 2.0) < 0.05 and abs(n.std() - 3.0) < 0.05
    m = taiji.empty(100_000).normal_(-1.0, 0.5).numpy()
    assert abs(m.mean() + 1.0) < 0.01 and abs(m.std() - 0.5) < 0.01
    t = taiji.normal(taiji.zeros(2, 3), taiji.ones(2, 3))
    assert t.shape == (2, 3)


@pytest.mark.parametrize("dtype", [taiji.float16, taiji.bfloat16, taiji.float32,
                                   taiji.float64])
def test_uniform_range_and_mean(dtype):
    taiji.manual_seed(0)
    u = taiji.rand(100_000, dtype=dtype)
    assert u.dtype is dtype
    a = u.numpy().astype(np.float64)
    assert a.min() >= 0.0 and a.max() < 1.0     # [0, 1): never exactly 1, in any dtype
    assert abs(a.mean() - 0.5) < 0.01
    assert abs(a.var() - 1 / 12) < 0.005
    v = taiji.empty(50_000, dtype=taiji.float64).uniform_(-2.0, 5.0).numpy()
    assert v.min() >= -2.0 and v.max() < 5.0 and abs(v.mean() - 1.5) < 0.05


def test_randint_range_and_coverage():
    taiji.manual_seed(0)
    r = taiji.randint(3, 7, (20_000,)).numpy()
    assert r.dtype == np.int64
    assert r.min() == 3 and r.max() == 6
    counts = np.bincount(r - 3, minlength=4)
    assert counts.min() > 4500  # each of 4 values about 5000 times
    r2 = taiji.randint(5, (1000,))   # high only
    assert r2.min() >= 0 and r2.max() <= 4
    r3 = taiji.randint(-5, -2, (1000,), dtype=taiji.int32)
    assert r3.dtype is taiji.int32 and set(r3.tolist()) == {-5, -4, -3}


def test_randperm_is_a_permutation():
    taiji.manual_seed(0)
    for n in (0, 1, 2, 17, 1000):
        p = taiji.randperm(n)
        assert p.dtype is taiji.int64
        assert sorted(p.tolist()) == list(range(n))
    p = taiji.randperm(1000).numpy()
    assert (p != np.arange(1000)).sum() > 900  # actually shuffled
    assert taiji.randperm(5, dtype=taiji.int32).dtype is taiji.int32


def test_random_values_on_views_and_numpy_buffers():
    a = np.zeros(1000, dtype=np.float32)
    t = taiji.from_numpy(a)
    taiji.manual_seed(0)
    t.uniform_()
    assert a.min() >= 0.0 and a.max() < 1.0 and a.std() > 0.2  # written into the buffer
    t.normal_()
    assert abs(a.mean()) < 0.15 and abs(a.std() - 1) < 0.15


def test_random_inplace_keeps_dtype_and_shape():
    t = taiji.zeros(2, 3, dtype=taiji.float64)
    t.normal_()
    assert t.dtype is taiji.float64 and t.shape == (2, 3)
    h = taiji.zeros(4, dtype=taiji.float16).uniform_()
    assert h.dtype is taiji.float16


def test_random_creation_rejects_int_dtypes():
    with pytest.raises(TypeError, match="expected a floating dtype, got taiji.int32"):
        taiji.rand(2, dtype=taiji.int32)
    with pytest.raises(TypeError, match="floating"):
        taiji.randn(2, dtype=taiji.int64)


def test_rand_like_family():
    base = taiji.zeros(3, 4, dtype=taiji.float64)
    assert taiji.rand_like(base).shape == (3, 4)
    assert taiji.randn_like(base).dtype is taiji.float64
    r = taiji.randint_like(taiji.zeros(5, dtype=taiji.int64), 0, 3)
    assert r.dtype is taiji.int64 and r.max().item() <= 2


def test_bernoulli_probability():
    taiji.manual_seed(0)
    p = taiji.full((50_000,), 0.3)
    b = taiji.bernoulli(p)
    assert set(np.unique(b.numpy()).tolist()) <= {0.0, 1.0}
    assert abs(b.numpy().mean() - 0.3) < 0.01


def test_manual_seed_under_no_grad_and_requires_grad_flag():
    taiji.manual_seed(8)
    with taiji.no_grad():
        a = taiji.randn(3)
    taiji.manual_seed(8)
    b = taiji.randn(3, requires_grad=True)
    assert a.tolist() == b.tolist()
    assert b.requires_grad and b.is_leaf
