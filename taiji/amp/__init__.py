"""``taiji.amp``: automatic mixed precision (PyTorch's ``torch.amp``).

- :class:`autocast` — regions whose matmuls / convolutions run in bfloat16 or float16 while
  softmax, reductions, norms and losses run in float32 (the policy table:
  :data:`taiji.amp.autocast_mode.POLICY`);
- :class:`GradScaler` — dynamic loss scaling with skipped steps on inf/NaN gradients.

Both work eagerly and inside ``taiji.jit`` (see ``docs/amp.md``).
"""
from taiji.amp.autocast_mode import (  # noqa: F401
    autocast, is_autocast_enabled, get_autocast_dtype, POLICY, policy_of,
)
from taiji.amp.grad_scaler import GradScaler  # noqa: F401

__all__ = ["autocast", "GradScaler", "is_autocast_enabled", "get_autocast_dtype", "POLICY",
           "policy_of"]
