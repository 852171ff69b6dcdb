"""The CUDA C that taiji/compiler/cuda.py generates for fused regions compiles with NVRTC.
NVRTC needs no GPU, so this runs wherever CuPy and NVRTC are installed (skipped elsewhere);
the GPU tests (test_cuda_gpu.py) then run the kernels."""
from __future__ import annotations

import os

import numpy as np
import pytest

import taiji
from taiji._core.ir import Eqn, Graph, Literal, Var
from taiji._core.primitive import ShapedArray
from taiji._prims import elementwise as E
from taiji.compiler.cuda import kernel_source


def _nvrtc():
    try:
        import cupy
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()
        return cupy
    except Exception as e:  # noqa: BLE001 - any missing piece: skip
        pytest.skip(f"CuPy's NVRTC is not available here ({type(e).__name__})")


_CT = {"float32": "float", "float64": "double", "bool": "bool"}


def compile_region(cupy, in_params, out_params, body, name):
    """Wrap a region's kernel body the way cupy.ElementwiseKernel does and compile it."""
    from cupy_backends.cuda.libs import nvrtc
    params, loads = [], []
    for decl, const in [(d, True) for d in in_params.split(", ") if d] + \
                       [(d, False) for d in out_params.split(", ") if d]:
        dtype, n = decl.split()
        t = _CT[dtype]
        params.append(f"CArray<{t}, 1> _raw_{n}")
        loads.append(f"{'const ' if const else ''}{t} &{n} = _raw_{n}[_ind.get()];")
    src = "\n".join([
        "#include <cupy/complex.cuh>", "#include <cupy/carray.cuh>",
        "#include <cupy/atomics.cuh>", "#include <cupy/math_constants.h>",
        f'extern "C" __global__ void {name}({", ".join(params + ["CIndexer<1> _ind"])}) {{',
        "  CUPY_FOR(i, _ind.size()) {", "    _ind.set(i);", *loads, body, "  }", "}"])
    inc = os.path.join(os.path.dirname(cupy.__file__), "_core", "include")
    prog = nvrtc.createProgram(src, f"{name}.cu", (), ())
    try:
        try:  # (NVRTC itself: CuPy's compiler asks the GPU which architecture to target)
            cccl = os.path.join(inc, "cupy", "_cccl")
            nvrtc.compileProgram(prog, ["--fmad=false", f"-I{inc}", "-std=c++17",
                                        "--gpu-architecture=compute_80"] +
                                 [f"-I{os.path.join(cccl, d)}" for d in sorted(os.listdir(cccl))])
        except nvrtc.NVRTCError:
            pytest.fail(f"{name} does not compile:\n{nvrtc.getProgramLog(prog)}\n{src}")
        return nvrtc.getPTX(prog)
    finally:
        nvrtc.destroyProgram(prog)


def _v(dtype=taiji.float32, shape=(4,)):
    return Var(ShapedArray(shape, dtype))


def _lit(x, dtype=np.float32):
    return Literal(np.array(x, dtype))


def test_every_fusable_op_compiles():
    cupy = _nvrtc()
    for d in (taiji.float32, taiji.float64):
        a, b, c = _v(d), _v(d), _v(taiji.bool)
        outs, eqns = [], []

        def put(prim, ins, dt=d):
            o = _v(dt)
            eqns.append(Eqn(prim, ins, {}, [o]))
            outs.append(o)
            return o
        s = put(E.add, [a, b])
        s = put(E.sub, [s, _lit(np.inf, d.np)])
        s = put(E.mul, [s, _lit(np.nan, d.np)])
        s = put(E.div, [s, b])
        s = put(E.maximum, [s, a])
        s = put(E.minimum, [s, _lit(-0.0, d.np)])
        s = put(E.neg, [s])
        s = put(E.sqrt, [s])
        s = put(E.abs_, [s])
        s = put(E.sign, [s])
        for p in (E.floor, E.ceil, E.trunc, E.relu):
            s = put(p, [s])
        m = put(E.gt, [s, a], taiji.bool)
        for p in (E.eq, E.ne, E.lt, E.le, E.ge):
            put(p, [s, b], taiji.bool)
        s = put(E.select, [m, s, a])
        s = put(E.select, [c, s, b])
        f = put(E.convert, [m], d)
        eqns[-1].params = {"dtype": d}
        g = Graph([a, b, c], eqns, [s, f, m])
        compile_region(cupy, *kernel_source(g))
        compile_region(cupy, *kernel_source(g, {0: 0, 1: 1}))  # outputs over inputs


def test_training_step_regions_compile(monkeypatch):
    """The regions of real training steps (MLP with Adam, a CNN), as jit builds them."""
    cupy = _nvrtc()
    from taiji.compiler import fusion
    import taiji.nn as nn
    import taiji.nn.functional as F
    seen = []
    real = fusion.Region.__init__

    def spy(self, graph, shape, inplace=(), colsum=()):
        real(self, graph, shape, inplace, colsum)
        seen.append((graph, dict(inplace)))
    monkeypatch.setattr(fusion.Region, "__init__", spy)
    for model, shape in ((lambda: nn.Sequential(nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)),
                          (4, 12)),
                         (lambda: nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(),
                                                nn.MaxPool2d(2), nn.Flatten(),
                                                nn.Linear(8, 3)), (2, 1, 4, 4))):
        m = model()
        opt = taiji.optim.Adam(m.parameters())
        x, y = taiji.randn(*shape), taiji.tensor([0, 1, 2, 0][:shape[0]])

        @taiji.jit
        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            return loss
        step(x, y)
        step(x, y)
    assert seen
    for graph, inplace in seen:
        compile_region(cupy, *kernel_source(graph, inplace))



def compile_raw(name: str, src: str) -> None:
    """Compile a RawKernel's source with NVRTC; fail with the log if it does not compile."""
    from cupy_backends.cuda.libs import nvrtc
    prog = nvrtc.createProgram(src, f"{name}.cu", (), ())
    try:
        try:
            nvrtc.compileProgram(prog, ["--gpu-architecture=compute_80"])
        except nvrtc.NVRTCError:
            pytest.fail(f"{name} does not compile:\n{nvrtc.getProgramLog(prog)}\n{src}")
        assert f".entry {name}".encode() in nvrtc.getPTX(prog)
    finally:
        nvrtc.destroyProgram(prog)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("label_dtype", ["int64", "int32"])
def test_cross_entropy_kernels_compile(dtype, label_dtype):
    """The CUDA cross-entropy kernels (taiji/backends/cupy_xent.py) compile with NVRTC."""
    _nvrtc()
    from taiji.backends.cupy_xent import sources
    for kind, (name, src) in sources(dtype, label_dtype).items():
        assert name in src and " T " not in src and "const L*" not in src
        compile_raw(name, src)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_max_pool_kernels_compile(dtype):
    """The CUDA max-pooling kernels (taiji/backends/cupy_pool.py) compile with NVRTC."""
    _nvrtc()
    from taiji.backends.cupy_pool import sources
    for kind, (name, src) in sources(dtype).items():
        assert name in src and "const T*" not in src
        compile_raw(name, src)
