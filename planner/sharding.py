"""What one accelerator holds under a layout: parameters per pipeline rank, gradient precision.

Shared by the graph builder (how much to reduce, how much to update) and the memory model.
"""

from __future__ import annotations

from planner.strategy import Strategy
from planner.workloads.transformer import TransformerSpec


def layer_params_local(model: TransformerSpec, s: Strategy) -> float:
    """Parameters of one layer held by one rank (tensor- and expert-parallel shards)."""
    attn = model.attn_params / s.tp
    if model.is_moe:
        router = model.hidden_size * model.num_experts
        mlp = (model.mlp_params - router) / (s.tp * s.ep) + router
    else:
        mlp = model.mlp_params / s.tp
    return attn + mlp + model.small_params_per_layer


def rank_params(model: TransformerSpec, s: Strategy) -> list[float]:
    """Parameters held by one accelerator of each pipeline rank (before ZeRO sharding)."""
    p, v = s.pp, s.vpp
    stages = p * v
    per_chunk = model.num_layers // stages * layer_params_local(model, s)
    out = []
    for r in range(p):
        n = 0.0
        for c in range(v):
            vs = c * p + r
            n += per_chunk
            if vs == 0:
                n += model.embedding_params / s.tp
            if vs == stages - 1:
                n += model.lm_head_params / s.tp
        if model.tied_embeddings and p > 1 and r == p - 1:
            n += model.vocab_size * model.hidden_size / s.tp  # the last stage's copy of the embedding
        out.append(n)
    return out


def grad_reduce_bytes(s: Strategy) -> int:
    """Bytes per gradient element kept and reduced across data-parallel ranks.

    Megatron-LM accumulates and reduces in fp32 under bf16 (``accumulate_allreduce_grads_in_fp32``)
    and in fp16 under fp16; ZeRO-3 / FSDP mixed precision reduce-scatters in 16 bit.
    """
    if s.zero_stage == 3 or s.precision == "fp16":
        return 2
    return 4
