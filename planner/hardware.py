"""Hardware: accelerators, node types (scale-up and scale-out fabrics), cloud instances, clusters.

The catalog lives in ``hardware_specs/*.yaml`` (data, not code); every figure there carries its
source and date. This module holds the pydantic schema that validates it on load, the catalog
lookup (with close-match suggestions for unknown ids) and :func:`resolve_cluster`, which turns
what a user named (a catalog cluster, a cloud instance, or a bare accelerator) plus a GPU count
into the :class:`Cluster` the simulator uses.

Units: ``_gb_s`` is gigabytes per second (1e9 bytes/s), ``_gbps`` gigabits per second (1e9 bit/s),
``_gib`` is 2**30 bytes, ``_us`` microseconds, ``_tflops`` 1e12 FLOP/s. Link bandwidths are per
accelerator and per direction unless the name says otherwise.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from planner.errors import PlannerInputError, pydantic_message, unknown_id

Precision = Literal["fp32", "tf32", "fp16", "bf16", "fp8", "fp4"]
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "fp16", "bf16", "fp8", "fp4")

try:  # the C loader is ~10x faster; CLI start-up reads the whole catalog
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader


GIB = 2**30

RUNTIME_RESERVE_GIB = 1.0
"""CUDA context, NCCL buffers and allocator slack held outside the model's tensors (an estimate:
the CUDA context alone is 0.3-0.6 GiB on A100/H100); see docs/model.md."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # finite figures only


class Accelerator(_Spec):
    """One accelerator chip: dense peaks, memory, its scale-up link, power."""

    id: str
    name: str
    vendor: str
    peak_tflops: dict[Precision, float] = Field(description="dense (no sparsity) peak per precision")
    memory_gib: float = Field(gt=0)
    memory_bandwidth_gb_s: float = Field(gt=0)
    scale_up_gb_s: float = Field(ge=0, description="scale-up link bandwidth, one direction")
    power_w: float | None = Field(default=None, gt=0, description="TDP / max board power, W")
    idle_power_w: float | None = Field(
        default=None,
        gt=0,
        description="power with no kernel running in a training job (P0, memory loaded), W; planner.energy's rule when absent",
    )
    compute_units: int | None = Field(
        default=None,
        gt=0,
        description="streaming multiprocessors / compute units; GEMM tiles fill them in waves",
    )
    gemm_peak_fraction: dict[Precision, float] = Field(
        default_factory=dict,
        description="measured best large-GEMM throughput / dense peak (MAMF), per precision",
    )
    default_node: str | None = Field(default=None, description="node type id used with --accelerator")
    sources: list[str] = Field(min_length=1)
    date: str
    notes: str = ""

    @field_validator("peak_tflops")
    @classmethod
    def _positive_peaks(cls, v: dict[str, float]) -> dict[str, float]:
        if not v:
            raise ValueError("at least one precision needs a peak")
        for k, x in v.items():
            if x <= 0:
                raise ValueError(f"peak_tflops.{k} must be > 0")
        return v

    @field_validator("gemm_peak_fraction")
    @classmethod
    def _fractions(cls, v: dict[str, float]) -> dict[str, float]:
        for k, x in v.items():
            if not 0 < x <= 1:
                raise ValueError(f"gemm_peak_fraction.{k} must be in (0, 1]")
        return v

    @property
    def memory_bytes(self) -> float:
        return self.memory_gib * 2**30

    def peak_flops(self, precision: str) -> float:
        """Dense peak FLOP/s for a precision; raises a user error if the chip lacks it."""
        if precision == "fp16" and "fp16" not in self.peak_tflops and "bf16" in self.peak_tflops:
            return self.peak_tflops["bf16"] * 1e12
        if precision == "bf16" and "bf16" not in self.peak_tflops and "fp16" in self.peak_tflops:
            # Volta has no bf16; frameworks fall back to fp16 tensor cores.
            return self.peak_tflops["fp16"] * 1e12
        if precision not in self.peak_tflops:
            have = ", ".join(sorted(self.peak_tflops))
            raise PlannerInputError("precision", f"{self.id} has no {precision} peak (it has: {have})")
        return self.peak_tflops[precision] * 1e12  # type: ignore[index]


class ScaleUp(_Spec):
    """The fabric inside a node (or a scale-up domain larger than a node, e.g. NVL72)."""

    kind: Literal["nvswitch", "nvlink-mesh", "pcie", "xgmi", "ici", "neuronlink", "roce-mesh"]
    bandwidth_gb_s: float = Field(gt=0, description="per accelerator, one direction")
    latency_us: float = Field(ge=0, description="one ring step (hop) of a collective inside the island")
    domain_size: int = Field(ge=1, description="accelerators that share this fabric")
    in_network_reduction: bool = Field(default=False, description="NVLink SHARP (NVLS) reductions")


class ScaleOut(_Spec):
    """The network between nodes, seen from one node."""

    kind: str = Field(description="e.g. InfiniBand HDR, EFA v2, RoCE")
    nics_per_node: int = Field(ge=0)
    nic_gbps: float = Field(ge=0, description="one NIC, one direction")
    latency_us: float = Field(ge=0, description="one level of the inter-node tree of a collective")
    oversubscription: float = Field(default=1.0, ge=1.0, description="spine oversubscription ratio")


class NodeType(_Spec):
    """A server: accelerators, their scale-up fabric, scale-out NICs, host memory."""

    id: str
    description: str = ""
    accelerator: str
    gpus_per_node: int = Field(ge=1)
    scale_up: ScaleUp
    scale_out: ScaleOut
    host_memory_gib: float | None = Field(default=None, gt=0)
    host_link_gb_s: float | None = Field(default=None, gt=0, description="host<->accelerator, per GPU")
    system_power_w: float | None = Field(
        default=None, gt=0, description="the whole server's rated maximum input power, W (vendor datasheet)"
    )
    sources: list[str] = Field(min_length=1)
    date: str

    @property
    def scale_out_gbps_per_gpu(self) -> float:
        return self.scale_out.nics_per_node * self.scale_out.nic_gbps / self.gpus_per_node


class Instance(_Spec):
    """A cloud instance type: a node type with a price."""

    id: str
    provider: str
    node_type: str
    usd_per_hour: float | None = Field(default=None, gt=0, description="on-demand, whole instance")
    price_kind: str = "on-demand"
    region: str | None = None
    price_source: str
    price_date: str
    notes: str = ""


class ClusterSpec(_Spec):
    """A named cluster: a number of nodes of one type, optionally with a price."""

    id: str
    description: str = ""
    node_type: str | NodeType
    nodes: int = Field(ge=1)
    usd_per_gpu_hour: float | None = Field(default=None, gt=0)
    sources: list[str] = Field(min_length=1)
    date: str


class Cluster(BaseModel):
    """The resolved cluster a scenario runs on: what the simulator and the report use."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    name: str
    accelerator: Accelerator
    node: NodeType
    num_gpus: int = Field(ge=1)
    usd_per_gpu_hour: float | None = None
    price_source: str | None = None
    price_date: str | None = None
    instance: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> Cluster:
        g = self.node.gpus_per_node
        if self.num_gpus > g and self.num_gpus % g:
            raise ValueError(f"num_gpus {self.num_gpus} must be a multiple of gpus_per_node {g}")
        return self

    @property
    def gpus_per_node(self) -> int:
        return min(self.node.gpus_per_node, self.num_gpus)

    @property
    def num_nodes(self) -> int:
        return max(1, self.num_gpus // self.node.gpus_per_node)

    @property
    def usd_per_hour(self) -> float | None:
        return None if self.usd_per_gpu_hour is None else self.usd_per_gpu_hour * self.num_gpus


# --------------------------------------------------------------------------------------- catalog


def specs_dir() -> Path:
    """Where the catalog lives: $PLANNER_SPECS, else the wheel's copy (planner/hardware_specs, made by setup.py's
    build hook from the one source), else the repository's hardware_specs/ (an editable install, a checkout)."""
    env = os.environ.get("PLANNER_SPECS")
    if env:
        return Path(env)
    shipped = Path(str(importlib.resources.files("planner") / "hardware_specs"))
    if (shipped / "accelerators.yaml").is_file():
        return shipped
    return Path(__file__).resolve().parent.parent / "hardware_specs"


def load_yaml(path: Path, field: str) -> Any:
    """Read a YAML file, turning a missing file or bad syntax into one clear line."""
    if not path.exists():
        raise PlannerInputError(field, f"file not found: {path}")
    if path.is_dir():
        raise PlannerInputError(field, f"{path} is a folder, not a YAML file")
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "malformed YAML"
        raise PlannerInputError(field, f"{path}: {problem}{where}") from None


class Catalog:
    """All catalog entries by id, validated on load."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.accelerators: dict[str, Accelerator] = self._load("accelerators.yaml", "accelerators", Accelerator)
        self.node_types: dict[str, NodeType] = self._load("node_types.yaml", "node_types", NodeType)
        self.instances: dict[str, Instance] = self._load("instances.yaml", "instances", Instance)
        self.clusters: dict[str, ClusterSpec] = self._load("clusters.yaml", "clusters", ClusterSpec)
        self._check_references()

    def _load(self, name: str, key: str, model: type[_Spec]) -> dict[str, Any]:
        path = self.root / name
        data = load_yaml(path, f"catalog {name}")
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise PlannerInputError(f"catalog {name}", f"expected a top-level '{key}:' list")
        out: dict[str, Any] = {}
        for i, item in enumerate(data[key]):
            try:
                obj = model.model_validate(item)
            except ValidationError as e:
                ident = item.get("id", f"#{i}") if isinstance(item, dict) else f"#{i}"
                raise pydantic_message(f"catalog {name} {ident}", e) from None
            if obj.id in out:  # type: ignore[attr-defined]
                raise PlannerInputError(f"catalog {name}", f"duplicate id '{obj.id}'")  # type: ignore[attr-defined]
            out[obj.id] = obj  # type: ignore[attr-defined]
        return out

    def _check_references(self) -> None:
        for a in self.accelerators.values():
            if a.default_node and a.default_node not in self.node_types:
                raise PlannerInputError(f"catalog accelerator {a.id}", f"unknown default_node {a.default_node}")
        for n in self.node_types.values():
            if n.accelerator not in self.accelerators:
                raise PlannerInputError(f"catalog node type {n.id}", f"unknown accelerator {n.accelerator}")
        for i in self.instances.values():
            if i.node_type not in self.node_types:
                raise PlannerInputError(f"catalog instance {i.id}", f"unknown node_type {i.node_type}")
        for c in self.clusters.values():
            if isinstance(c.node_type, str) and c.node_type not in self.node_types:
                raise PlannerInputError(f"catalog cluster {c.id}", f"unknown node_type {c.node_type}")

    # -- lookups that accept a catalog id or a user's YAML file ---------------------------------

    def accelerator(self, ref: str, field: str = "accelerator") -> Accelerator:
        if _looks_like_file(ref):
            return _validate_file(ref, field, Accelerator)
        if ref not in self.accelerators:
            raise unknown_id(field, ref, self.accelerators)
        return self.accelerators[ref]

    def node_type(self, ref: str | NodeType, field: str = "node_type") -> NodeType:
        if isinstance(ref, NodeType):
            return ref
        if _looks_like_file(ref):
            return _validate_file(ref, field, NodeType)
        if ref not in self.node_types:
            raise unknown_id(field, ref, self.node_types)
        return self.node_types[ref]

    def instance(self, ref: str, field: str = "instance") -> Instance:
        if _looks_like_file(ref):
            return _validate_file(ref, field, Instance)
        if ref not in self.instances:
            raise unknown_id(field, ref, self.instances)
        return self.instances[ref]

    def cluster(self, ref: str, field: str = "cluster") -> ClusterSpec:
        if _looks_like_file(ref):
            return _validate_file(ref, field, ClusterSpec)
        if ref not in self.clusters:
            raise unknown_id(field, ref, self.clusters)
        return self.clusters[ref]


def _looks_like_file(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml")) or os.sep in ref


def _validate_file(ref: str, field: str, model: type[_Spec]) -> Any:
    data = load_yaml(Path(ref), field)
    if not isinstance(data, dict):
        raise PlannerInputError(field, f"{ref}: expected a YAML mapping of fields")
    data.setdefault("id", Path(ref).stem)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise pydantic_message(f"{field} {ref}", e) from None


@functools.lru_cache(maxsize=4)
def _catalog_at(root: str) -> Catalog:
    return Catalog(Path(root))


def catalog() -> Catalog:
    """The catalog at :func:`specs_dir`, loaded once per process."""
    return _catalog_at(str(specs_dir()))


# --------------------------------------------------------------------------------- resolution


def resolve_cluster(
    *,
    gpus: int | None,
    cluster: str | Cluster | None = None,
    instance: str | None = None,
    accelerator: str | None = None,
    gpus_per_node: int | None = None,
    inter_node_gbps_per_gpu: float | None = None,
    cat: Catalog | None = None,
) -> Cluster:
    """Turn the user's choice of hardware into a :class:`Cluster`.

    Exactly one of ``cluster``, ``instance`` or ``accelerator`` names the hardware. A catalog
    cluster fixes the GPU count unless ``gpus`` asks for fewer; an instance or an accelerator
    needs ``gpus`` (whole nodes once it exceeds one node). ``gpus_per_node`` and
    ``inter_node_gbps_per_gpu`` override the node type's figures (what-if questions, and the
    validation data, which states them per run).
    """
    if isinstance(cluster, Cluster):  # already resolved (the API accepts either)
        return cluster
    cat = cat or catalog()
    named = [x for x in (cluster, instance, accelerator) if x]
    if len(named) != 1:
        raise PlannerInputError("cluster", "name exactly one of cluster, instance or accelerator")
    if gpus is not None and gpus < 1:
        raise PlannerInputError("gpus", f"must be a positive integer, got {gpus}")

    price: float | None = None
    price_source = price_date = inst_id = None
    if cluster:
        spec = cat.cluster(cluster)
        node = cat.node_type(spec.node_type, field="cluster.node_type")
        total = spec.nodes * node.gpus_per_node
        if gpus is not None and gpus > total:
            raise PlannerInputError("gpus", f"cluster {spec.id} has {total} GPUs, fewer than the {gpus} asked")
        n = gpus or total
        acc = cat.accelerator(node.accelerator, field="cluster.accelerator")
        name = spec.id
        price = spec.usd_per_gpu_hour
        price_source = "; ".join(spec.sources) if price else None
        price_date = spec.date if price else None
    elif instance:
        inst = cat.instance(instance)
        node = cat.node_type(inst.node_type, field="instance.node_type")
        acc = cat.accelerator(node.accelerator, field="instance.accelerator")
        if gpus is None:
            raise PlannerInputError("gpus", "is required with an instance (the number of accelerators)")
        n = gpus
        name = inst.id
        inst_id = inst.id
        if inst.usd_per_hour is not None:
            price = inst.usd_per_hour / node.gpus_per_node
            price_source, price_date = inst.price_source, inst.price_date
    else:
        assert accelerator is not None
        acc = cat.accelerator(accelerator)
        if acc.default_node is None:
            raise PlannerInputError("accelerator", f"{acc.id} has no default node type; name a cluster instead")
        node = cat.node_type(acc.default_node)
        if gpus is None:
            raise PlannerInputError("gpus", "is required with an accelerator (the number of accelerators)")
        n = gpus
        name = f"{n}x {acc.id}"

    if gpus_per_node is not None or inter_node_gbps_per_gpu is not None:
        node = override_node(node, gpus_per_node, inter_node_gbps_per_gpu)
    g = node.gpus_per_node
    if n > g and n % g:
        raise PlannerInputError("gpus", f"{n} GPUs is not a whole number of {g}-GPU nodes")
    if n > max(g, node.scale_up.domain_size) and node.scale_out_gbps_per_gpu <= 0:
        raise PlannerInputError(
            "gpus", f"node type {node.id} has no known scale-out network, so at most {g} GPUs (one node)"
        )
    return Cluster(
        name=name,
        accelerator=acc,
        node=node,
        num_gpus=n,
        usd_per_gpu_hour=price,
        price_source=price_source,
        price_date=price_date,
        instance=inst_id,
    )


def override_node(node: NodeType, gpus_per_node: int | None, inter_node_gbps_per_gpu: float | None) -> NodeType:
    """A copy of ``node`` with another GPU count per node or scale-out bandwidth per GPU."""
    upd: dict[str, Any] = {}
    g = node.gpus_per_node
    if gpus_per_node is not None:
        if gpus_per_node < 1:
            raise PlannerInputError("gpus_per_node", f"must be a positive integer, got {gpus_per_node}")
        g = gpus_per_node
        upd["gpus_per_node"] = g
        upd["scale_up"] = node.scale_up.model_copy(update={"domain_size": min(node.scale_up.domain_size, g)})
    per_gpu = node.scale_out_gbps_per_gpu if inter_node_gbps_per_gpu is None else inter_node_gbps_per_gpu
    if inter_node_gbps_per_gpu is not None and not 0 < inter_node_gbps_per_gpu < float("inf"):  # NaN fails too
        raise PlannerInputError("inter_node_gbps_per_gpu", f"must be finite and > 0, got {inter_node_gbps_per_gpu}")
    # Keep the per-GPU scale-out bandwidth (one NIC per GPU, each per_gpu Gb/s).
    upd["scale_out"] = node.scale_out.model_copy(update={"nics_per_node": g, "nic_gbps": per_gpu})
    return node.model_copy(update=upd)
