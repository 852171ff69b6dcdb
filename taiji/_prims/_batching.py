"""A batching fallback for primitives whose vmap rule would be intricate: run the primitive
once per batch element and stack. Correct for every primitive; used only where noted."""
from __future__ import annotations


def loop_batch(prim):
    def batch(ins, dims, **params):
        size = next(t.shape[d] for t, d in zip(ins, dims) if d is not None)
        outs = []
        for i in range(size):
            args = [t if d is None else t.select(d, i) for t, d in zip(ins, dims)]
            outs.append(prim(*args, **params))
        if prim.multiple_results:
            return tuple(_stack([o[k] for o in outs]) for k in range(len(outs[0]))), \
                (0,) * len(outs[0])
        return _stack(outs), 0
    return batch


def _stack(ts):
    from taiji._ops import stack
    return stack(ts, 0)
