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


def stage_layers(num_layers: int, stages: int) -> list[int]:
    """Layers of each virtual pipeline stage, as even as possible.

    When the layers do not divide evenly, the first and last stages (which also hold the embedding
    and the LM head with the loss) get the fewer layers, as in Megatron-DeepSpeed's
    ``type:transformer|embedding`` partition (BLOOM) and Megatron-Core's uneven first/last stages.
    """
    base, extra = divmod(num_layers, stages)
    counts = [base] * stages
    order = list(range(1, stages - 1)) + ([stages - 1, 0] if stages > 1 else [0])
    for i in order[:extra]:
        counts[i] += 1
    return counts


def rank_params(model: TransformerSpec, s: Strategy) -> list[float]:
    """Parameters held by one accelerator of each pipeline rank (before ZeRO sharding)."""
    p, v = s.pp, s.vpp
    stages = p * v
    layers = stage_layers(model.num_layers, stages)
    per_layer = layer_params_local(model, s)
    out = []
    for r in range(p):
        n = 0.0
        for c in range(v):
            vs = c * p + r
            n += layers[vs] * per_layer
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
