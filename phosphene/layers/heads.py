"""Attention heads as units: the view ``ATTN#heads`` of an attention module.

Head h's unit at a token is the L2 norm of that head's output there (its attention-weighted
values, before the output projection). Two kinds of attention modules are understood:

- modules with a head count (``num_heads``, ``num_attention_heads``) and an output projection
  Linear (``proj`` in timm, ``o_proj`` / ``out_proj`` in Hugging Face ``transformers``) that runs
  as a module: its input (B, L, heads*d), or (B, h, w, heads*d) for channels-last attention,
  holds the heads' outputs side by side (a recorded pass tells whether it runs: `heads_readable`);
- ``nn.MultiheadAttention`` (torchvision's ViT): its ``out_proj`` is not called as a module, so the
  heads' outputs are recomputed from its inputs and ``in_proj`` weights.

The values (B, L, heads) are in the graph of the network's input, so objectives on heads get
gradients; they are not part of the network's own computation (no attribution *through* heads).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PhospheneError

HEAD_COUNTS = ("num_heads", "num_attention_heads")
PROJECTIONS = ("proj", "o_proj", "out_proj")


def head_count(module: nn.Module) -> int | None:
    """The number of heads an attention module declares."""
    return next((n for n in (getattr(module, a, None) for a in HEAD_COUNTS) if isinstance(n, int)), None)


def projection(module: nn.Module) -> str | None:
    """The attribute name of the module's output projection (a Linear), or None."""
    return next((a for a in PROJECTIONS if isinstance(getattr(module, a, None), nn.Linear)), None)


def is_attention(module: nn.Module) -> bool:
    """True for modules whose heads `hook_heads` can read."""
    if isinstance(module, nn.MultiheadAttention):
        return True
    return head_count(module) is not None and projection(module) is not None


def heads_readable(module: nn.Module, name: str, calls: list[str]) -> bool:
    """True when a recorded pass (its module ``calls``) shows that `hook_heads` sees the heads of
    ``module`` (called ``name``): an ``nn.MultiheadAttention``, or one whose output projection ran
    as a module."""
    if isinstance(module, nn.MultiheadAttention):
        return True
    return is_attention(module) and f"{name}.{projection(module)}" in calls


def check_attention(module: nn.Module, name: str) -> None:
    """`PhospheneError` unless ``module`` is an attention module."""
    if not is_attention(module):
        raise PhospheneError(f"{name}#heads: {name} is a {type(module).__name__}, not an attention "
                             "module (nn.MultiheadAttention or one with num_heads and an output "
                             "projection proj / o_proj / out_proj)")


def _norms(heads_side_by_side: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(..., heads*d) -> (..., heads): the L2 norm of each head's slice ((B, L, .) for token
    layers, (B, h, w, .) for channels-last attention such as MaxViT's)."""
    width = heads_side_by_side.shape[-1]
    return heads_side_by_side.unflatten(-1, (num_heads, width // num_heads)).norm(dim=-1)


def mha_head_outputs(mha: nn.MultiheadAttention, query: torch.Tensor, key: torch.Tensor,
                     value: torch.Tensor) -> torch.Tensor:
    """Per-head outputs of ``mha`` side by side (B, L, E), before ``out_proj`` (no masks, eval)."""
    if not mha.batch_first:
        query, key, value = (t.transpose(0, 1) for t in (query, key, value))
    e, h = mha.embed_dim, mha.num_heads
    if mha.in_proj_weight is not None:
        w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
    else:
        w_q, w_k, w_v = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
    b_q, b_k, b_v = mha.in_proj_bias.chunk(3) if mha.in_proj_bias is not None else (None,) * 3
    q, k, v = F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)
    split = [t.unflatten(-1, (h, e // h)).transpose(1, 2) for t in (q, k, v)]
    out = F.scaled_dot_product_attention(*split)  # (B, heads, L, d)
    return out.transpose(1, 2).flatten(2)


def hook_heads(module: nn.Module, store: Callable[[torch.Tensor], None]):
    """Register a hook that calls ``store`` with the (B, L, heads) head norms on every call of
    ``module``; returns the handle. The hook runs before the module's other forward hooks."""
    if isinstance(module, nn.MultiheadAttention):
        def after(mod, args, kwargs, _output):
            q = args[0] if args else kwargs["query"]
            k = args[1] if len(args) > 1 else kwargs.get("key", q)
            v = args[2] if len(args) > 2 else kwargs.get("value", k)
            store(_norms(mha_head_outputs(mod, q, k, v), mod.num_heads))

        return module.register_forward_hook(after, with_kwargs=True, prepend=True)
    num_heads = head_count(module)

    def before_proj(_proj, inputs):
        store(_norms(inputs[0], num_heads))

    return getattr(module, projection(module)).register_forward_pre_hook(before_proj)
