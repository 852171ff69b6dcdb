"""Module machinery: registration, naming, state_dict, modes, hooks, errors, functional_call."""
import numpy as np
import pytest

import taiji
import taiji.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 256)
        self.fc2 = nn.Linear(256, 128)
        self.bn = nn.BatchNorm1d(128)
        self.register_buffer("scratch", taiji.zeros(2), persistent=False)

    def forward(self, x):
        return self.bn(self.fc2(self.fc1(x)))


def test_registration_and_names():
    m = Net()
    assert [k for k, _ in m.named_parameters()] == [
        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "bn.weight", "bn.bias"]
    assert [k for k, _ in m.named_buffers()] == [
        "scratch", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert list(m.state_dict()) == [
        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "bn.weight", "bn.bias",
        "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert [k for k, _ in m.named_modules()] == ["", "fc1", "fc2", "bn"]
    assert len(list(m.children())) == 3
    assert m.num_parameters() == 4 * 256 + 256 + 256 * 128 + 128 + 256
    assert "(fc2): Linear(in_features=256, out_features=128, bias=True)" in repr(m)
    shared = nn.Sequential(m.fc1, m.fc1)
    assert len(list(shared.parameters())) == 2


def test_wrong_input_shape_names_module_path():
    m = Net()
    with pytest.raises(RuntimeError, match=r"model\.fc2 \(Linear 256->128\) expected last dim "
                                           r"256, got 300"):
        m.fc2(taiji.randn(3, 300))
    seq = nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.Linear(5, 2)))
    with pytest.raises(RuntimeError, match=r"model\.1\.0 \(Linear 5->2\) expected last dim 5"):
        seq(taiji.randn(2, 3))
    with pytest.raises(ValueError, match=r"model\.bn \(BatchNorm1d 128\) expected 128 channels"):
        m.bn(taiji.randn(4, 7))


def test_state_dict_roundtrip_and_strict_errors():
    a, b = Net(), Net()
    b.load_state_dict(a.state_dict())
    for (k, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    sd = a.state_dict()
    del sd["fc1.bias"]
    sd["extra.weight"] = taiji.zeros(1)
    sd["fc2.weight"] = taiji.zeros(3, 3)
    with pytest.raises(RuntimeError) as e:
        b.load_state_dict(sd)
    msg = str(e.value)
    assert 'Missing key(s) in state_dict: "fc1.bias"' in msg
    assert 'Unexpected key(s) in state_dict: "extra.weight"' in msg
    assert "size mismatch for fc2.weight" in msg and "[3, 3]" in msg and "[128, 256]" in msg
    del sd["fc2.weight"]
    missing, unexpected = b.load_state_dict(sd, strict=False)
    assert missing == ["fc1.bias", "fc2.weight"] and unexpected == ["extra.weight"]


def test_load_state_dict_copies_in_place():
    m = nn.Linear(2, 2)
    w = m.weight
    m.load_state_dict({"weight": np.ones((2, 2), np.float32), "bias": np.zeros(2, np.float32)})
    assert m.weight is w and np.all(w.detach().numpy() == 1)


def test_train_eval_zero_grad_requires_grad_apply_to():
    m = Net()
    m.eval()
    assert not m.training and not m.bn.training
    m.train()
    assert m.fc1.training
    m(taiji.randn(5, 4)).sum().backward()
    assert m.fc1.weight.grad is not None
    m.zero_grad(set_to_none=False)
    assert np.all(m.fc1.weight.grad.numpy() == 0)
    m.zero_grad()
    assert m.fc1.weight.grad is None
    m.requires_grad_(False)
    assert not any(p.requires_grad for p in m.parameters())
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Linear", "Linear", "BatchNorm1d", "Net"]
    m.double()
    assert m.fc1.weight.dtype == taiji.float64
    assert m.bn.num_batches_tracked.dtype == taiji.int64


def test_forward_hooks():
    m = nn.Linear(3, 2)
    calls = []
    h = m.register_forward_hook(lambda mod, args, out: out * 0)
    h2 = m.register_forward_pre_hook(lambda mod, args: calls.append(args[0].shape))
    out = m(taiji.randn(4, 3))
    assert np.all(out.detach().numpy() == 0) and calls == [(4, 3)]
    h.remove()
    h2.remove()
    assert not np.all(m(taiji.randn(4, 3)).detach().numpy() == 0)


def test_containers():
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(ml) == 3 and len(list(ml.parameters())) == 6
    md = nn.ModuleDict({"a": nn.Linear(2, 3)})
    md["b"] = nn.ReLU()
    assert list(md.keys()) == ["a", "b"]
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert isinstance(seq[-1], nn.Linear) and len(seq[:2]) == 2
    pl = nn.ParameterList([nn.Parameter(taiji.zeros(2))])
    assert len(list(pl.parameters())) == 1


def test_parameter_assignment_rules():
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="cannot assign"):
        m.weight = taiji.zeros(2, 2)
    p = nn.Parameter(taiji.ones(3))
    assert p.requires_grad and p.is_leaf and isinstance(p, taiji.Tensor)
    m.extra = p
    assert "extra" in dict(m.named_parameters())


def test_functional_call_and_grad():
    m = nn.Linear(3, 1)
    x = taiji.randn(5, 3)
    params = {k: v.detach() for k, v in m.named_parameters()}
    params["weight"] = taiji.ones(1, 3)
    out = taiji.func.functional_call(m, params, (x,))
    np.testing.assert_allclose(out.numpy(), x.numpy().sum(1, keepdims=True)
                               + params["bias"].numpy(), rtol=1e-5)
    assert not np.all(m.weight.detach().numpy() == 1)  # module unchanged

    def loss(p):
        return taiji.func.functional_call(m, p, (x,)).sum()
    g = taiji.grad(loss)(params)
    np.testing.assert_allclose(g["weight"].numpy(), x.numpy().sum(0, keepdims=True), rtol=1e-5)
    assert set(taiji.func.state(m)) == {"weight", "bias"}
