"""Energy of a simulated training step: accelerator power read off the timeline, host overhead,
the facility (PUE), carbon (grid intensity) and the electricity bill.

The model, per accelerator (all SI inside: watts, seconds, joules; kWh only in the result):

    P_accelerator = P_idle + (P_max - P_idle) * activity
    activity      = (busy_s * BUSY + comm_s * COMM) / step_s

where ``busy_s`` is the time the busiest rank's compute stream runs kernels (the breakdown's
``compute_s`` + ``optimizer_s``: GEMMs, attention, memory-bound kernels, recomputation), ``comm_s``
is communication the rank waits on (``exposed_comm_s``) and the rest of the step (pipeline
bubble, launch-bound gaps, idle) draws ``P_idle``. Every accelerator of the cluster is charged the
busiest rank's profile (data-parallel replicas do the same work; other pipeline ranks do the same
compute with a similar bubble), so the figure is an upper bound by at most the ranks' imbalance.

    P_IT       = GPUs * P_accelerator + nodes * P_host      (the cluster's IT power, averaged)
    P_facility = P_IT * PUE
    E_step     = P_facility * step_s;   CO2 = E * grid intensity;   $ = E * electricity price

The constants and the figures they rest on are in the block below, each with its source; a
figure a source gives per accelerator or per server (``idle_power_w``, ``system_power_w``) lives
in ``hardware_specs/`` and takes precedence over the global rule. An accelerator without a power
figure (``power_w``) gets no energy estimate (``None``), never a made-up number.

Left out: network switches (no per-port figure found), storage, checkpoint writes and restarts
(see planner.search.goodput for their time), embodied (manufacturing) carbon.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planner.errors import PlannerInputError
from planner.hardware import Cluster
from planner.units_format import wrap

# ------------------------------------------------------------------------------ constants, sourced

IDLE_FRACTION_OF_MAX = 0.15
"""Accelerator power with no kernel running inside a training job, as a fraction of its maximum
(``power_w``), where the catalog gives no ``idle_power_w``. Morrison et al., "Holistically
Evaluating the Environmental Impact of Creating Language Models", ICLR 2025 (arXiv:2503.05804):
measured power during OLMo training "fluctuating between 15% and 85% of our hardware's maximum
power draw", the troughs being checkpoint pauses in which the GPUs wait. Consistent with NVIDIA's
DPS device specification for GB200 (minimum load 200 of 1200 W, 17 %) and with an nvidia-smi
reading of a V100 SXM2 in P0 at 0 % utilisation, 53 of 300 W (18 %; THUDM/GLM-130B issue #32)."""

BUSY_ACTIVITY = 1.0
"""Activity while the compute stream runs kernels: the accelerator draws its power limit. Patel et
al., "Characterizing Power Management Opportunities for LLMs in the Cloud", ASPLOS 2024
(doi:10.1145/3620666.3651329; earlier version arXiv:2308.12908): the peak power of LLM training iterations often reaches or exceeds the GPU's
TDP, in the compute-heavy phase of every iteration. Memory-bound kernels are counted here too, so
busy time is priced at its upper bound."""

COMM_ACTIVITY = 0.5
"""Activity while the rank only waits on communication (NCCL kernels hold a few SMs and stream HBM,
the tensor cores idle). An assumption, half-way between idle and the limit: no measurement of it
was found; Patel et al. (above) show the power of training iterations dropping in their
communication phases, without a figure for it. Exposed communication is a small share of a
well-tuned step, so the estimate moves little with it (see docs/model.md)."""

HOST_LOAD_FRACTION = 0.61
"""Non-accelerator power of a busy training server (CPUs, memory, NICs, NVSwitches, fans, storage)
as a fraction of its rated share (rated system power - accelerators x ``power_w``). Latif et al.,
"Empirical Measurements of AI Training Power Demand on a GPU-Accelerated Node", IEEE Access 13
(2025), arXiv:2412.08602: an 8x H100 HGX node training Llama2-13b peaked at 8.4 kW against its
10.2 kW rating "even with GPUs near full utilization"; with the GPUs at their 700 W limit that
leaves 8.4 - 5.6 = 2.8 kW for the rest of the node, 0.61 of its rated 4.6 kW. Held constant over
the step (host components do not follow the GPUs' sub-second phases)."""

HOST_RATED_PER_ACCELERATOR_W = (10_200.0 - 8 * 700.0) / (8 * 700.0)
"""Where a node type has no ``system_power_w``: its rated non-accelerator power per watt of
accelerator ``power_w``, taken from the DGX H100 (10.2 kW rated, 8 x 700 W GPUs: 0.82 W per W).
The DGX A100 gives 1.03 (6.5 kW, 8 x 400 W) and the DGX B200 0.79 (14.3 kW, 8 x 1000 W)."""

DEFAULT_PUE = 1.58
"""Uptime Institute Global Data Center Survey 2023: industry-average annual PUE 1.58 (flat at
1.55-1.59 since 2020). Hyperscale sites run lower (Google reports a fleet-wide ~1.10); pass
``--pue`` for the site you have."""

DEFAULT_GRID_GCO2_PER_KWH = 436.0
"""World average carbon intensity of electricity generation in 2022, 436 gCO2e/kWh (Ember, Global
Electricity Review 2023, published 2023-04). Pass ``--grid-gco2-per-kwh`` for the site's grid."""

DEFAULT_USD_PER_KWH = 0.0806
"""US average retail price of electricity to industrial customers in 2023, 8.06 cents/kWh (EIA,
Electric Power Monthly / Annual, 2024-03 release). Pass ``--usd-per-kwh`` for your contract."""

SOURCES = {
    "idle": "Morrison et al. 2025 (arXiv:2503.05804): training power troughs at 15 % of max",
    "busy": "Patel et al. ASPLOS'24 (arXiv:2308.12908): LLM training iterations peak at or above TDP",
    "comm": "assumption: half-way between idle and max (no measurement found)",
    "host": "Latif et al. 2025 (arXiv:2412.08602): 8x H100 node peaks at 8.4 of 10.2 kW rated",
    "pue": "Uptime Institute Global Data Center Survey 2023: average PUE 1.58",
    "grid": "Ember Global Electricity Review 2023: world 2022 average 436 gCO2e/kWh",
    "price": "EIA: US industrial electricity 2023 average 8.06 cents/kWh",
}


# ---------------------------------------------------------------------------------------- inputs


class Site(BaseModel):
    """Where the cluster runs: facility overhead, grid carbon intensity, electricity price (finite)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    pue: float = Field(default=DEFAULT_PUE, ge=1.0, description="facility power / IT power (>= 1)")
    grid_gco2_per_kwh: float = Field(
        default=DEFAULT_GRID_GCO2_PER_KWH, ge=0, description="grid carbon intensity, gCO2e per kWh"
    )
    usd_per_kwh: float = Field(default=DEFAULT_USD_PER_KWH, ge=0, description="electricity price, USD per kWh")


DEFAULT_SITE = Site()

_RULES = {"pue": "must be a finite number >= 1 (facility power / IT power)",
          "grid_gco2_per_kwh": "must be a finite number >= 0", "usd_per_kwh": "must be a finite number >= 0"}  # fmt: skip


def make_site(
    site: Site | None = None,
    *,
    pue: float | None = None,
    grid_gco2_per_kwh: float | None = None,
    usd_per_kwh: float | None = None,
) -> Site:
    """A :class:`Site` from ``site`` (default :data:`DEFAULT_SITE`) with any figure replaced; a bad
    value raises one user error naming the field."""
    base = site or DEFAULT_SITE
    upd = {k: v for k, v in (("pue", pue), ("grid_gco2_per_kwh", grid_gco2_per_kwh), ("usd_per_kwh", usd_per_kwh))
           if v is not None}  # fmt: skip
    try:
        return Site.model_validate({**base.model_dump(), **upd})
    except ValidationError as e:
        err = e.errors()[0]
        field = str(err["loc"][0]) if err.get("loc") else "site"
        got = upd.get(field, getattr(base, field, None)) if field in _RULES else None
        raise PlannerInputError(field, f"{_RULES.get(field, err['msg'])}, got {got}") from None


class PowerModel(BaseModel):
    """The global constants of the power model (defaults: the sourced block above)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    idle_fraction_of_max: float = Field(default=IDLE_FRACTION_OF_MAX, ge=0, le=1)
    busy_activity: float = Field(default=BUSY_ACTIVITY, ge=0, le=1)
    comm_activity: float = Field(default=COMM_ACTIVITY, ge=0, le=1)
    host_load_fraction: float = Field(default=HOST_LOAD_FRACTION, ge=0, le=1)
    host_rated_per_accelerator_w: float = Field(default=HOST_RATED_PER_ACCELERATOR_W, ge=0)


DEFAULT_POWER = PowerModel()


# ---------------------------------------------------------------------------------------- result


class Energy(BaseModel):
    """Energy, carbon and electricity cost of one step (and of a run when its length is known).

    ``kwh_*`` and everything derived from them are at the facility meter: IT energy x PUE."""

    kwh_per_step: float = Field(description="facility energy of one step (IT x PUE), kWh")
    it_kwh_per_step: float = Field(description="accelerators + hosts, before PUE, kWh")
    kwh_per_run: float | None = Field(description="facility kWh to train the given tokens (no failures counted)")
    kwh_per_million_tokens: float | None
    kwh_per_billion_samples: float | None
    avg_accelerator_power_w: float = Field(description="average over the step, per accelerator")
    accelerator_max_power_w: float
    accelerator_idle_power_w: float
    host_power_w_per_node: float = Field(description="non-accelerator server power while training")
    it_power_kw: float = Field(description="cluster IT power averaged over the step")
    facility_power_kw: float = Field(description="it_power_kw x PUE")
    pue: float
    grid_gco2_per_kwh: float
    usd_per_kwh: float
    co2_kg_per_step: float
    co2_kg_per_run: float | None
    co2_kg_per_million_tokens: float | None
    energy_usd_per_step: float = Field(description="electricity at usd_per_kwh (a cloud price already includes it)")
    energy_usd_per_run: float | None
    energy_usd_per_million_tokens: float | None
    activity: dict[str, float] = Field(
        description="share of the step busy / waiting on communication / idle, and the resulting activity"
    )
    sources: dict[str, str] = Field(description="what each figure rests on")


def accelerator_power_w(cluster: Cluster, power: PowerModel = DEFAULT_POWER) -> tuple[float, float, str] | None:
    """(max, idle, where the idle figure comes from) for the cluster's accelerator; None without a
    power figure."""
    acc = cluster.accelerator
    if acc.power_w is None:
        return None
    if acc.idle_power_w is not None:
        return acc.power_w, min(acc.idle_power_w, acc.power_w), f"hardware_specs: {acc.id} idle_power_w"
    rule = f"rule: {power.idle_fraction_of_max:.0%} of power_w ({SOURCES['idle']})"
    return acc.power_w, power.idle_fraction_of_max * acc.power_w, rule


def host_power_w_per_node(cluster: Cluster, power: PowerModel = DEFAULT_POWER) -> tuple[float, str]:
    """Non-accelerator power of one busy server and where it comes from."""
    node, acc = cluster.node, cluster.accelerator
    gpu_rated = node.gpus_per_node * (acc.power_w or 0.0)
    if node.system_power_w is not None and node.system_power_w > gpu_rated:
        rated = node.system_power_w - gpu_rated
        src = f"hardware_specs: {node.id} system_power_w {node.system_power_w:g} W - {gpu_rated:g} W of accelerators"
    else:
        rated = power.host_rated_per_accelerator_w * gpu_rated
        src = f"rule: {power.host_rated_per_accelerator_w:.2f} W per W of accelerator power_w (DGX H100 rating)"
    return power.host_load_fraction * rated, f"{power.host_load_fraction:.2f} x rated ({src}); {SOURCES['host']}"


def estimate_energy(
    result: Any,
    cluster: Cluster,
    site: Site | None = None,
    *,
    tokens: float | None = None,
    power: PowerModel = DEFAULT_POWER,
) -> Energy | None:
    """The :class:`Energy` of a simulated step (a StepResult or a RecsysStepResult: anything with
    ``step_time_s`` and a breakdown holding ``compute_s``, ``optimizer_s``, ``exposed_comm_s``);
    ``tokens`` (transformers) gives the per-run figures. None when the accelerator has no power
    figure."""
    acc_w = accelerator_power_w(cluster, power)
    if acc_w is None:
        return None
    p_max, p_idle, idle_src = acc_w
    site = site or DEFAULT_SITE
    step = float(result.step_time_s)
    b = result.breakdown
    busy = max(0.0, b.compute_s + b.optimizer_s)
    comm = max(0.0, b.exposed_comm_s)
    if busy + comm > step > 0:  # guard against overlapping categories
        busy, comm = busy * step / (busy + comm), comm * step / (busy + comm)
    idle = max(0.0, step - busy - comm)
    activity = (busy * power.busy_activity + comm * power.comm_activity) / step if step > 0 else 0.0
    p_acc = p_idle + (p_max - p_idle) * activity

    n = cluster.num_gpus
    host_node_w, host_src = host_power_w_per_node(cluster, power)
    host_w = host_node_w * n / cluster.node.gpus_per_node  # a partial node pays its share
    it_w = n * p_acc + host_w
    it_kwh = it_w * step / 3.6e6
    kwh = it_kwh * site.pue
    co2_kg = kwh * site.grid_gco2_per_kwh / 1000.0
    usd = kwh * site.usd_per_kwh

    tok_step = getattr(result, "tokens_per_s", None)
    tok_step = tok_step * step if tok_step else None
    samples_step = None if tok_step else float(result.samples_per_s) * step
    per_m = (lambda x: x / tok_step * 1e6) if tok_step else (lambda x: None)
    steps_run = tokens / tok_step if (tokens and tok_step) else None
    per_run = (lambda x: x * steps_run) if steps_run else (lambda x: None)
    return Energy(
        kwh_per_step=kwh,
        it_kwh_per_step=it_kwh,
        kwh_per_run=per_run(kwh),
        kwh_per_million_tokens=per_m(kwh),
        kwh_per_billion_samples=kwh / samples_step * 1e9 if samples_step else None,
        avg_accelerator_power_w=p_acc,
        accelerator_max_power_w=p_max,
        accelerator_idle_power_w=p_idle,
        host_power_w_per_node=host_node_w,
        it_power_kw=it_w / 1e3,
        facility_power_kw=it_w * site.pue / 1e3,
        pue=site.pue,
        grid_gco2_per_kwh=site.grid_gco2_per_kwh,
        usd_per_kwh=site.usd_per_kwh,
        co2_kg_per_step=co2_kg,
        co2_kg_per_run=per_run(co2_kg),
        co2_kg_per_million_tokens=per_m(co2_kg),
        energy_usd_per_step=usd,
        energy_usd_per_run=per_run(usd),
        energy_usd_per_million_tokens=per_m(usd),
        activity={
            "busy": busy / step if step > 0 else 0.0,
            "comm": comm / step if step > 0 else 0.0,
            "idle": idle / step if step > 0 else 1.0,
            "activity": activity,
        },
        sources={
            "accelerator_max_power_w": f"hardware_specs: {cluster.accelerator.id} power_w",
            "accelerator_idle_power_w": idle_src,
            "activity": f"busy {power.busy_activity:g} ({SOURCES['busy']}); communication {power.comm_activity:g}"
            f" ({SOURCES['comm']}); idle 0",
            "host_power_w_per_node": host_src,
            "pue": SOURCES["pue"] if site.pue == DEFAULT_PUE else "given",
            "grid_gco2_per_kwh": SOURCES["grid"] if site.grid_gco2_per_kwh == DEFAULT_GRID_GCO2_PER_KWH else "given",
            "usd_per_kwh": SOURCES["price"] if site.usd_per_kwh == DEFAULT_USD_PER_KWH else "given",
            "left_out": "network switches, storage, checkpoints and restarts, embodied carbon",
        },
    )


def no_energy_reason(accelerator_id: str) -> str:
    """Why a result carries no energy estimate (the only reason: no power figure)."""
    return f"no power figure (power_w) for {accelerator_id} in hardware_specs, so no energy estimate"


def format_energy(r: Any) -> list[str]:
    """The human-readable energy lines of a result (CLI): kWh per step at the meter, average power
    per accelerator, CO2e and the electricity bill beside the instance price; the run when known."""
    e: Energy | None = getattr(r, "energy", None)
    if e is None:
        return [f"energy           {no_energy_reason(r.scenario['cluster']['accelerator'])}"]
    inst = r.cost.usd_per_step
    beside = f" (instance ${inst:,.4g}/step)" if inst is not None else ""
    lines = wrap(
        f"energy           {e.kwh_per_step:,.4g} kWh/step at the meter (PUE {e.pue:g}),"
        f" {e.avg_accelerator_power_w:,.0f} W avg per GPU of {e.accelerator_max_power_w:,.0f},"
        f" {e.co2_kg_per_step:,.3g} kg CO2e/step ({e.grid_gco2_per_kwh:g} g/kWh),"
        f" electricity ${e.energy_usd_per_step:,.3g}/step{beside}"
    )
    if e.kwh_per_run is not None and e.co2_kg_per_run is not None and e.energy_usd_per_run is not None:
        lines += wrap(
            f"  whole run: {e.kwh_per_run / 1e3:,.4g} MWh, {e.co2_kg_per_run / 1e3:,.4g} t CO2e,"
            f" ${e.energy_usd_per_run:,.0f} of electricity (failures and restarts not counted)",
            indent="    ",
        )
    return lines
