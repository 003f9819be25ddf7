"""Sharding planner for embedding tables, in TorchRec's shape: enumerate, estimate, propose, partition.

:func:`planner.recsys.planner.plan_sharding` ties the stages together; the contracts between them
are in :mod:`planner.recsys.types`.
"""
