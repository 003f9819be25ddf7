"""The transformer family: a dense or MoE decoder trained with DP/TP/PP/CP/EP, ZeRO/FSDP and a pipeline schedule.

Data flow: spec (model) -> strategy (layout, defaults) -> sharding and memory -> plan (every group, message
size, pass and memory term, computed once) -> graph (for the engine) | estimate (closed form) -> result ->
format. :mod:`planner.transformer.family` exposes it through the :class:`planner.family.WorkloadFamily`
contract. A regular package (not a namespace one) so the import contracts in pyproject.toml can name it.
"""
