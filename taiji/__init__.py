"""taiji: one deep-learning framework, two faces over one core.

动 eager (PyTorch's names): Tensor, .backward(), nn, optim, DataLoader.
静 compiled (JAX's names): grad, vjp, jvp, vmap, jit, taiji.numpy.

This module only re-exports; everything is defined in the submodules.
"""
from taiji._dtypes import (  # noqa: F401
    DType as dtype, float16, bfloat16, float32, float64, int8, uint8, int16, int32, int64,
    uint32, bool, half, float, double, long, int, short, get_default_dtype, set_default_dtype,
    promote_types,
)
from taiji._dtypes import DType  # noqa: F401
from taiji.tensor import Tensor  # noqa: F401
from taiji._device import device  # noqa: F401
from taiji._creation import (  # noqa: F401
    tensor, as_tensor, asarray, from_numpy, zeros, ones, full, empty, arange, linspace,
    logspace, eye, zeros_like, ones_like, full_like, empty_like, scalar_tensor, is_tensor,
    numel,
)
from taiji._ops import (  # noqa: F401
    add, sub, mul, div, true_divide, floor_divide, remainder, pow, maximum, minimum, atan2,
    eq, ne, lt, le, gt, ge, logical_and, logical_or, logical_xor, logical_not, bitwise_not,
    bitwise_and, bitwise_or, bitwise_xor, where, exp, log, log1p, expm1, log2, log10, sqrt,
    rsqrt, sin, cos, tan, tanh, sigmoid, erf, neg, abs, sign, relu, isnan, isinf, isfinite,
    floor, ceil, trunc, round, reciprocal, square, gelu, silu, softplus, clamp, clip,
    clamp_min, clamp_max, nan_to_num, lerp, sum, mean, var, std, var_mean, std_mean, prod,
    amax, amin, max, min, argmax, argmin, all, any, logsumexp, norm, cumsum, cumprod, softmax,
    log_softmax, reshape, flatten, unflatten, squeeze, unsqueeze, permute, transpose,
    swapaxes, swapdims, t, movedim, moveaxis, broadcast_to, broadcast_shapes,
    broadcast_tensors, cat, concat, concatenate, stack, hstack, vstack, narrow, select, split,
    chunk, tensor_split, unbind, flip, fliplr, flipud, roll, tile, repeat_interleave,
    clone, tril, triu, matmul, mm, bmm, dot, vdot, inner, mv, outer, ger, einsum, tensordot,
)
from taiji._ops import neg as negative, sub as subtract, mul as multiply, div as divide  # noqa
from taiji._indexing import (  # noqa: F401
    gather, scatter, scatter_add, index_select, index_add, masked_fill, masked_select,
    nonzero, sort, argsort, topk, kthvalue, median, take_along_dim,
)
from taiji.random import (  # noqa: F401
    Generator, manual_seed, seed, initial_seed, get_rng_state, set_rng_state,
    default_generator,
)
from taiji._random_ops import (  # noqa: F401
    rand, randn, randint, randperm, rand_like, randn_like, randint_like, normal, bernoulli,
    multinomial,
)
from taiji.autograd import (  # noqa: F401
    no_grad, enable_grad, set_grad_enabled, is_grad_enabled, inference_mode,
)
from taiji import autograd, random  # noqa: F401
from taiji.transforms import (  # noqa: F401
    grad, value_and_grad, vjp, jvp, linearize, jacrev, jacfwd, hessian, vmap,
)
from taiji import tree_util, numpy  # noqa: F401  (taiji.numpy: the jax.numpy-style namespace)
from taiji.compiler.api import jit  # noqa: F401
from taiji.compiler.trace import TracerError  # noqa: F401
from taiji.control_flow import cond, switch, while_loop, fori_loop, scan  # noqa: F401

from taiji import nn, optim, func  # noqa: F401
from taiji.amp import autocast, is_autocast_enabled, get_autocast_dtype  # noqa: F401
from taiji import amp  # noqa: F401
from taiji.serialization import save, load, SerializationError  # noqa: F401
from taiji import utils, datasets  # noqa: F401
from taiji import cuda, backends  # noqa: F401  (taiji.cuda works without a GPU)

__version__ = "0.1.0"
