"""Stage 1: every layout of a search space, each checked against the layout rules.

The grid is the product of tensor (``tp``), pipeline (``pp``), virtual-stage (``vpp``),
context (``cp``) and expert (``ep``) parallelism, micro-batch, recomputation, ZeRO stage and
sequence parallelism; the data-parallel degree follows from the GPU count. Two structural limits
keep the grid to layouts a framework can run, and are counted like any other reason:

* ``tp`` stays inside the scale-up island (NVSwitch node, NVL72 rack): tensor parallelism over the
  scale-out network is never competitive and Megatron does not place it there;
* the layers split over ``pp * vpp`` stages evenly, or with the first and last stages one layer
  short each (Megatron-Core's uneven first/last stages, as Llama 3.1 405B ran: 126 layers on 16
  stages of 8, first and last 7).

Every other rule is :func:`planner.transformer.strategy.check_layout`'s; a layout it rejects is counted under
the field its message names.
"""

from __future__ import annotations

import itertools
from collections import Counter

from planner.errors import PlannerInputError
from planner.hardware import Cluster
from planner.search.types import Enumeration, SearchSpace
from planner.transformer.spec import TransformerSpec
from planner.transformer.strategy import Strategy, check_layout


def divisors(n: int) -> list[int]:
    """Positive divisors of ``n``, ascending."""
    small = [d for d in range(1, int(n**0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def powers_of_two(limit: int) -> list[int]:
    """1, 2, 4, ... up to ``limit``."""
    out, x = [], 1
    while x <= limit:
        out.append(x)
        x *= 2
    return out


def splits_layers(num_layers: int, stages: int) -> bool:
    """Whether ``num_layers`` splits over ``stages`` evenly or with the first/last stages one short."""
    if stages > num_layers:
        return False
    return num_layers % stages == 0 or (num_layers + 1) % stages == 0 or (num_layers + 2) % stages == 0


def scale_up_island(cluster: Cluster) -> int:
    """Accelerators that share the fast scale-up fabric (the most ``tp`` may span)."""
    node = cluster.node
    return min(max(node.gpus_per_node, node.scale_up.domain_size), cluster.num_gpus)


class GridEnumerator:
    """The full product of the space's options, filtered by structure and by ``check_layout``."""

    def enumerate(self, model: TransformerSpec, cluster: Cluster, space: SearchSpace, global_batch: int) -> Enumeration:
        """All valid layouts on ``cluster`` for ``global_batch`` sequences per step."""
        n = cluster.num_gpus
        island = scale_up_island(cluster)
        tps = list(space.tp) if space.tp is not None else powers_of_two(island)
        eps = list(space.ep) if space.ep is not None else self._default_ep(model)
        rejected: Counter[str] = Counter()
        valid: list[Strategy] = []
        listed = 0
        for tp, cp in itertools.product(tps, space.cp):
            if n % (tp * cp):
                rejected["tp*cp does not divide the GPUs"] += 1
                continue
            if tp > island:
                rejected["tp beyond the scale-up island"] += 1
                continue
            pps = list(space.pp) if space.pp is not None else divisors(n // (tp * cp))
            for pp in pps:
                if pp > model.num_layers:
                    continue  # outside the space: more stages than layers
                if not splits_layers(model.num_layers, pp):
                    rejected["layers do not split over pp stages"] += 1
                    continue
                vpps = [1] + [v for v in range(2, space.max_vpp + 1) if pp > 1 and pp * v <= model.num_layers]
                for vpp in vpps:
                    if vpp > 1 and not splits_layers(model.num_layers, pp * vpp):
                        rejected["layers do not split over pp*vpp stages"] += 1
                        continue
                    zbs = space.zero_bubble if pp > 1 and vpp == 1 else (False,)
                    for ep, mb, rc, zero, sp, zb in itertools.product(
                        eps, space.micro_batch, space.recompute, space.zero_stage, space.sequence_parallel, zbs
                    ):
                        if sp and tp == 1:
                            continue  # sequence parallelism is a tp > 1 option, not a separate layout
                        listed += 1
                        s = Strategy(
                            tp=tp,
                            pp=pp,
                            cp=cp,
                            ep=ep,
                            vpp=vpp,
                            micro_batch=mb,
                            global_batch=global_batch,
                            recompute=rc,
                            zero_stage=zero,
                            sequence_parallel=sp,
                            precision=space.precision,
                            schedule="zero-bubble" if zb else None,
                            framework=space.framework,
                            **({} if space.attention is None else {"attention": space.attention}),
                        )
                        try:
                            valid.append(check_layout(s, model, cluster))
                        except PlannerInputError as e:
                            rejected[rule_key(e)] += 1
        return Enumeration(gpus=n, listed=listed, valid=valid, rejected=dict(rejected))

    @staticmethod
    def _default_ep(model: TransformerSpec) -> list[int]:
        if not model.is_moe:
            return [1]
        return [e for e in powers_of_two(model.num_experts) if model.num_experts % e == 0]


def rule_key(e: PlannerInputError) -> str:
    """A count key for a rejected layout: the field and the rule with its numbers left out."""
    rule = e.rule
    if e.field == "global_batch":
        if "interleaved" in rule:
            return "global_batch: interleaving needs micro-batches per replica to be a multiple of pp"
        if "passes" in rule or "simulated tasks" in rule:
            return "global_batch: too many micro-batches x stages for one simulated step"
        return "global_batch: not a multiple of dp*micro_batch"
    generic = {
        "zero_stage": "ZeRO 2 cannot be combined with pp > 1",
        "tp": "tp must divide the heads / kv heads / ffn",
        "ep": "ep must divide the experts and dp",
    }
    if e.field in generic:
        return f"{e.field}: {generic[e.field]}"
    return f"{e.field}: {''.join(ch for ch in rule if not ch.isdigit()).strip()}"
