"""Attention layers: MultiheadAttention, TransformerEncoderLayer, TransformerEncoder.

Parameter names, shapes, initialisation and mask conventions follow PyTorch, so a
``torch.nn.TransformerEncoder`` state_dict loads unchanged. Masks follow
``torch.nn.MultiheadAttention``: a boolean ``attn_mask`` / ``key_padding_mask`` marks with
True the positions that may NOT be attended (the opposite of
``scaled_dot_product_attention``'s boolean mask); a float mask is added to the scores.
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Optional, Tuple, Union

import numpy as np

from taiji import _dtypes as dt
from taiji import _ops as O
from taiji._creation import empty
from taiji.nn import functional as F
from taiji.nn import init
from taiji.nn.container import ModuleList
from taiji.nn.dropout import Dropout
from taiji.nn.linear import Linear
from taiji.nn.module import Module
from taiji.nn.norm import LayerNorm
from taiji.nn.parameter import Parameter
from taiji.tensor import Tensor


def _apply_mask(scores: Tensor, mask: Tensor | None) -> Tensor:
    """Bool mask: True = masked out (-inf). Float mask: added to the scores."""
    if mask is None:
        return scores
    if mask.dtype is dt.bool_:
        return O.where(mask, O.scalar(-math.inf, scores.dtype, like=scores), scores)
    return scores + mask


class MultiheadAttention(Module):
    """Multi-head attention (PyTorch's ``nn.MultiheadAttention``).

    Args:
        embed_dim: model dimension E (query features; output features).
        num_heads: heads; ``embed_dim`` must be divisible by it.
        dropout: dropout probability on the attention weights (training only).
        bias: learn ``in_proj_bias`` and ``out_proj.bias``.
        add_bias_kv: learn ``bias_k`` / ``bias_v`` appended to the key / value sequences.
        add_zero_attn: append a zero step to the key / value sequences.
        kdim, vdim: key / value features (default ``embed_dim``); when either differs, the
            projections are ``q_proj_weight``, ``k_proj_weight``, ``v_proj_weight``, otherwise
            one packed ``in_proj_weight`` of shape (3E, E).
        batch_first: inputs and output are (N, L, E) instead of (L, N, E).

    Call ``mha(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)``; returns ``(attn_output, attn_weights)``
    with weights (N, L, S) averaged over heads, (N, num_heads, L, S) when
    ``average_attn_weights=False``, or None when ``need_weights=False``.

    Example:
        >>> mha = taiji.nn.MultiheadAttention(16, 4, batch_first=True)
        >>> x = taiji.randn(2, 5, 16)
        >>> out, w = mha(x, x, x)
        >>> out.shape, w.shape
        ((2, 5, 16), (2, 5, 5))
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False,
                 kdim: Optional[int] = None, vdim: Optional[int] = None,
                 batch_first: bool = False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads} instead")
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim must be divisible by num_heads, got "
                             f"embed_dim={embed_dim} and num_heads={num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout, self.batch_first = float(dropout), batch_first
        self.head_dim = embed_dim // num_heads
        self.add_zero_attn = add_zero_attn
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, dtype=dtype))
            for n in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(n, None)
        else:
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim, dtype=dtype))
            self.k_proj_weight = Parameter(empty(embed_dim, self.kdim, dtype=dtype))
            self.v_proj_weight = Parameter(empty(embed_dim, self.vdim, dtype=dtype))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if add_bias_kv:
            self.bias_k = Parameter(empty(1, 1, embed_dim, dtype=dtype))
            self.bias_v = Parameter(empty(1, 1, embed_dim, dtype=dtype))
        else:
            self.register_parameter("bias_k", None)
            self.register_parameter("bias_v", None)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def _describe(self) -> str:
        return f"{self._where()} (MultiheadAttention embed_dim={self.embed_dim}, " \
               f"num_heads={self.num_heads})"

    def _check(self, query, key, value, key_padding_mask, attn_mask) -> bool:
        where = self._describe()
        if query.ndim not in (2, 3):
            raise ValueError(f"{where} expected query to be 2-D (unbatched) or 3-D (batched), "
                             f"got shape {list(query.shape)}")
        batched = query.ndim == 3
        for name, t, feat in (("query", query, self.embed_dim), ("key", key, self.kdim),
                              ("value", value, self.vdim)):
            if t.ndim != query.ndim:
                raise ValueError(f"{where} expected {name} to be {query.ndim}-D like query, "
                                 f"got shape {list(t.shape)}")
            if t.shape[-1] != feat:
                raise RuntimeError(f"{where} expected {name} last dim {feat}, got "
                                   f"{t.shape[-1]} ({name} of shape {list(t.shape)})")
        if key.shape[:-1] != value.shape[:-1]:
            raise RuntimeError(f"{where} key shape {list(key.shape)} does not match value "
                               f"shape {list(value.shape)}")
        if batched:
            bd = 0 if self.batch_first else 1
            if not (query.shape[bd] == key.shape[bd]):
                raise RuntimeError(f"{where} query and key have different batch sizes: "
                                   f"{list(query.shape)} and {list(key.shape)}")
        L = query.shape[-2] if not batched else query.shape[1 if self.batch_first else 0]
        S = key.shape[-2] if not batched else key.shape[1 if self.batch_first else 0]
        N = query.shape[0 if self.batch_first else 1] if batched else 1
        if key_padding_mask is not None:
            want = (N, S) if batched else (S,)
            if tuple(key_padding_mask.shape) != want:
                raise RuntimeError(f"{where} expected key_padding_mask of shape {list(want)}, "
                                   f"got {list(key_padding_mask.shape)}")
        if attn_mask is not None:
            ok = [(L, S), (N * self.num_heads, L, S)]
            if tuple(attn_mask.shape) not in ok:
                raise RuntimeError(f"{where} expected attn_mask of shape {list(ok[0])} or "
                                   f"{list(ok[1])}, got {list(attn_mask.shape)}")
        return batched

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Optional[Tensor] = None, need_weights: bool = True,
                attn_mask: Optional[Tensor] = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
        batched = self._check(query, key, value, key_padding_mask, attn_mask)
        self_attn = query is key and key is value
        if not batched:  # work batch-first internally: (N, L, E)
            query, key, value = (O.unsqueeze(t, 0) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = O.unsqueeze(key_padding_mask, 0)
        elif not self.batch_first:
            query, key, value = (O.transpose(t, 0, 1) for t in (query, key, value))
        E, H, hd = self.embed_dim, self.num_heads, self.head_dim
        N, L, S = query.shape[0], query.shape[1], key.shape[1]
        if is_causal and attn_mask is None:
            attn_mask = O.const(np.triu(np.ones((L, S), dtype=bool), 1), query)
        b_q = b_k = b_v = None
        if self.in_proj_bias is not None:
            b_q, b_k, b_v = O.chunk(self.in_proj_bias, 3, 0)
        if self._qkv_same_embed_dim and self_attn:
            q, k, v = O.chunk(O.linear(query, self.in_proj_weight, self.in_proj_bias), 3, -1)
        else:
            if self._qkv_same_embed_dim:
                w_q, w_k, w_v = O.chunk(self.in_proj_weight, 3, 0)
            else:
                w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
            q = O.linear(query, w_q, b_q)
            k = O.linear(key, w_k, b_k)
            v = O.linear(value, w_v, b_v)
        # masks in (N, H, L, S) broadcastable form
        if attn_mask is not None and attn_mask.ndim == 3:
            attn_mask = O.reshape(attn_mask, (N, H, L, S))
        if key_padding_mask is not None:
            key_padding_mask = O.reshape(key_padding_mask, (N, 1, 1, S))
        if self.bias_k is not None:
            k = O.cat([k, O.expand(self.bias_k, N, 1, E)], 1)
            v = O.cat([v, O.expand(self.bias_v, N, 1, E)], 1)
            attn_mask, key_padding_mask = self._pad_masks(attn_mask, key_padding_mask)
            S += 1
        q = O.permute(O.reshape(q, (N, L, H, hd)), 0, 2, 1, 3)
        k = O.permute(O.reshape(k, (N, S, H, hd)), 0, 2, 1, 3)
        v = O.permute(O.reshape(v, (N, S, H, hd)), 0, 2, 1, 3)
        if self.add_zero_attn:
            z = O.const(np.zeros((N, H, 1, hd), dtype=k.dtype.np), k)
            k, v = O.cat([k, z], 2), O.cat([v, z], 2)
            attn_mask, key_padding_mask = self._pad_masks(attn_mask, key_padding_mask)
            S += 1
        scores = O.matmul(q * (1.0 / math.sqrt(hd)), O.transpose(k, -2, -1))
        scores = _apply_mask(_apply_mask(scores, attn_mask), key_padding_mask)
        attn = O.softmax(scores, -1)
        if self.dropout > 0.0 and self.training:
            attn = F.dropout(attn, self.dropout, True)
        out = O.reshape(O.permute(O.matmul(attn, v), 0, 2, 1, 3), (N, L, E))
        out = O.linear(out, self.out_proj.weight, self.out_proj.bias)
        if not batched:
            out = O.squeeze(out, 0)
        elif not self.batch_first:
            out = O.transpose(out, 0, 1)
        if not need_weights:
            return out, None
        w = O.mean(attn, 1) if average_attn_weights else attn
        return out, (w if batched else O.squeeze(w, 0))

    @staticmethod
    def _pad_masks(attn_mask, key_padding_mask):
        """One more key position (bias_k or the zero step) that every query may attend."""
        def pad(m):
            if m is None:
                return None
            if m.dtype is dt.bool_:
                return O.cat([m, O.const(np.zeros(m.shape[:-1] + (1,), dtype=bool), m)], -1)
            return O.pad(m, (0, 1))
        return pad(attn_mask), pad(key_padding_mask)

    def extra_repr(self) -> str:
        return ""


def _get_activation(activation: Union[str, Callable]) -> Callable:
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    if callable(activation):
        return activation
    raise RuntimeError(f"activation should be relu/gelu, not {activation}")


class TransformerEncoderLayer(Module):
    """Self-attention followed by a feed-forward block (PyTorch's
    ``nn.TransformerEncoderLayer``).

    Args:
        d_model: model dimension.
        nhead: attention heads.
        dim_feedforward: hidden size of the feed-forward block (default 2048).
        dropout: dropout probability (default 0.1).
        activation: ``"relu"``, ``"gelu"`` or a callable (default relu).
        layer_norm_eps: LayerNorm epsilon.
        batch_first: input is (N, L, E) instead of (L, N, E).
        norm_first: pre-norm (``x + sa(norm1(x))``) instead of post-norm.
        bias: learn biases in the linear and LayerNorm layers.

    Call ``layer(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``.

    Example:
        >>> layer = taiji.nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
        >>> layer(taiji.randn(2, 5, 16)).shape
        (2, 5, 16)
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation: Union[str, Callable] = "relu",
                 layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _get_activation(activation)

    def forward(self, src: Tensor, src_mask: Optional[Tensor] = None,
                src_key_padding_mask: Optional[Tensor] = None, is_causal: bool = False
                ) -> Tensor:
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal) -> Tensor:
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x) -> Tensor:
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout2(x)


class TransformerEncoder(Module):
    """A stack of ``num_layers`` copies of ``encoder_layer`` (PyTorch's
    ``nn.TransformerEncoder``), optionally followed by ``norm``.

    Each layer is an independent deep copy (its own parameters), registered as
    ``layers.0``, ``layers.1``, ... Call ``encoder(src, mask=None, src_key_padding_mask=None,
    is_causal=None)``.

    Example:
        >>> layer = taiji.nn.TransformerEncoderLayer(16, 4, 32)
        >>> enc = taiji.nn.TransformerEncoder(layer, num_layers=2)
        >>> enc(taiji.randn(5, 2, 16)).shape
        (5, 2, 16)
    """

    def __init__(self, encoder_layer: Module, num_layers: int, norm: Optional[Module] = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True):
        super().__init__()
        if not isinstance(encoder_layer, Module):
            raise TypeError(f"encoder_layer must be a taiji.nn.Module, got "
                            f"{type(encoder_layer).__name__}")
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor, self.mask_check = enable_nested_tensor, mask_check

    def forward(self, src: Tensor, mask: Optional[Tensor] = None,
                src_key_padding_mask: Optional[Tensor] = None,
                is_causal: Optional[bool] = None) -> Tensor:
        out = src
        for mod in self.layers:
            out = mod(out, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                      is_causal=bool(is_causal))
        if self.norm is not None:
            out = self.norm(out)
        return out
