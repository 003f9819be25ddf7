"""planner: a distributed-training simulator and capacity planner.

>>> import planner
>>> r = planner.simulate("gpt3-175b", accelerator="a100-sxm-80gb", gpus=1024, tp=8, pp=16,
...                      micro_batch=1, global_batch=1536, recompute="full")  # doctest: +SKIP
>>> r.step_time_s, r.mfu  # doctest: +SKIP
"""

from planner.errors import PlannerInputError
from planner.simulate import simulate
from planner.sweep import sweep

__all__ = ["PlannerInputError", "simulate", "sweep"]
__version__ = "0.1.0"
