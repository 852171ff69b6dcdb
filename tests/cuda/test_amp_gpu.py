"""float16 autocast and GradScaler on a real GPU (CuPy): tensor-core products with float32
accumulation, the seed MLP and CNN trained with fp16 AMP eagerly and under taiji.jit (one
CUDA-graph program, scaler state in GPU memory), skipped steps on inf/NaN, and agreement
with the CPU's float16 AMP. Marked ``cuda``; skipped, with the reason, without a GPU."""
from __future__ import annotations

import math

import numpy as np
import pytest

import taiji
from device_cases import cnn, host, mlp, program_of
from test_amp_fake import _amp_train

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not taiji.cuda.is_available(),
                       reason="CUDA not available (CuPy missing or no GPU): "
                              f"{taiji.cuda.unavailable_reason()}"),
]


def test_float16_products_accumulate_in_float32():
    import cupy
    a = taiji.ones(2, 4096, device="cuda", dtype=taiji.float16)
    b = taiji.ones(4096, 3, device="cuda", dtype=taiji.float16)
    with taiji.autocast("cuda"):
        c = a @ b
    assert c.dtype is taiji.float16 and type(c._data) is cupy.ndarray
    # float16 sums stall at 2048 (2048 + 1 rounds back to 2048); float32 ones reach 4096
    assert host(c).tolist() == [[4096.0] * 3] * 2
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 256)).astype(np.float16)
    w = rng.standard_normal((256, 32)).astype(np.float16)
    got = host(taiji.tensor(x, device="cuda") @ taiji.tensor(w, device="cuda"))
    ref = (x.astype(np.float32) @ w.astype(np.float32)).astype(np.float16)
    np.testing.assert_allclose(got.astype(np.float32), ref.astype(np.float32), rtol=2e-3,
                               atol=2e-2)


@pytest.mark.filterwarnings("ignore:invalid value")
@pytest.mark.parametrize("model,shape,classes", [(mlp, (32, 20), 5), (cnn, (8, 1, 8, 8), 3)],
                         ids=["mlp", "cnn"])
def test_fp16_amp_training_jit_eager_and_cpu(model, shape, classes):
    flags = taiji.backends.cuda.matmul
    old, flags.allow_tf32 = flags.allow_tf32, False
    try:
        # (SGD: float16 rounding differs between cuBLAS and NumPy, and Adam would turn a
        # near-zero gradient's rounding into a full-size step)
        runs = {(d, c): _amp_train(d, c, model, shape, classes, bad_step=2, optimizer="sgd")
                for d in ("cpu", "cuda") for c in (False, True)}
    finally:
        flags.allow_tf32 = old
    cpu = runs[("cpu", False)]
    for c in (False, True):
        losses, params, scaler, f = runs[("cuda", c)]
        assert math.isnan(losses[2]) and losses[-1] < losses[0], losses
        assert scaler.get_scale() == 2.0 ** 9  # the inf step was skipped, the scale halved
        assert all(t.is_cuda for t in scaler._state_tensors())
        # float16 rounding differs between cuBLAS and NumPy: close, not equal
        np.testing.assert_allclose(losses, cpu[0], rtol=2e-2, atol=2e-3)
        for a, b in zip(params, cpu[1]):
            np.testing.assert_allclose(a, b, rtol=5e-2, atol=5e-3)
    eager, jit = runs[("cuda", False)], runs[("cuda", True)]
    np.testing.assert_allclose(jit[0], eager[0], rtol=2e-3, atol=1e-4)
    prog = program_of(jit[3])
    assert prog.host_inputs == set()  # the scaler's state lives on the GPU
    print(f"\nfp16 AMP {model.__name__} jit step: program mode {prog.mode!r}"
          + (f" ({prog.fallback_reason})" if prog.fallback_reason else ""))


@pytest.mark.filterwarnings("ignore:invalid value")
@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "jit"])
def test_nonfinite_gradients_skip_the_step_on_the_gpu(compiled):
    losses, params, scaler, _ = _amp_train("cuda", compiled, steps=3, bad_step=0, bad=math.nan,
                                           optimizer="sgd")
    ref, rparams, _, _ = _amp_train("cuda", compiled, steps=2, optimizer="sgd")  # the 2 good
    assert math.isnan(losses[0])
    np.testing.assert_allclose(losses[1:], ref, rtol=1e-5)
    for a, b in zip(params, rparams):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
