"""Stages declare, the executor places: a stage is a callable class plus its resources; ``apply_stage`` turns
it into a Ray Data operator. Nothing else in the project talks to Ray Data's placement API."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reid_ray.config import StageResources


@dataclass(frozen=True)
class Stage:
    name: str
    fn: type  # callable class: __init__ loads models once per actor, __call__ maps a batch
    kwargs: dict[str, Any]
    resources: StageResources


def apply_stage(ds, stage: Stage):
    from ray.data import ActorPoolStrategy

    r = stage.resources
    return ds.map_batches(
        stage.fn,
        fn_constructor_kwargs=stage.kwargs,
        compute=ActorPoolStrategy(min_size=r.min_actors, max_size=r.max_actors),
        num_cpus=r.num_cpus,
        num_gpus=r.num_gpus or None,
        batch_size=r.batch_size,
        batch_format="numpy",
    )


def init_ray(address: str | None, num_cpus: int | None) -> None:
    """Join the cluster a job was submitted to (RAY_ADDRESS) or the given address; else start a local one."""
    import os

    import ray

    if ray.is_initialized():
        return
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address or None, log_to_driver=True)
    else:
        # "local": never attach to some other cluster a `ray start` left registered on this machine.
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=True)
