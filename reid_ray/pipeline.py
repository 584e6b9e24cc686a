"""Stages declare, the executor places: a stage is a callable class plus its resources; ``apply_stage`` turns
it into a Ray Data operator and ``run_stages`` chains a job's stages. Nothing else in the project talks to Ray
Data's placement API. ``RowStage`` is the contract of a row stage: set up once per actor, process one row."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any, ClassVar

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
        # An actor lost with its node is restarted and its batch retried elsewhere (Ray Data's defaults, stated
        # here because the job's fault tolerance rests on them; every stage's writes are idempotent).
        max_restarts=-1,
        max_task_retries=-1,
    )


def run_stages(ds, stages: Sequence[Stage]):
    """``ds`` through every stage in order, each an operator of its own (Ray Data streams rows between them)."""
    return functools.reduce(apply_stage, stages, ds)


def rows_of(batch: dict) -> list[dict]:
    """A Ray Data batch (column -> array or list) as rows of plain Python values."""
    n = len(next(iter(batch.values()))) if batch else 0
    return [{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in batch.items()} for i in range(n)]


def columns_of(rows: list[dict], fields: Sequence[str]) -> dict[str, list]:
    """Rows back into the batch a stage returns: ``fields`` only, in order."""
    return {k: [r[k] for r in rows] for k in fields}


class RowStage:
    """Base of a row stage, the callable class ``map_batches`` runs in an actor pool. A subclass sets up in
    ``__init__`` (config, output root; models load there or lazily, once per actor) and implements ``process``:
    one row in, its output row, or a list of rows (none, or several). The batch handling is here, once: the batch
    as rows, each processed, the results as the columns ``fields`` names. A stage that sets ``clock`` has the
    processing of each batch timed into ``_stats/`` (``StageClock``); a test calls ``process`` or the stage itself."""

    fields: ClassVar[tuple[str, ...]]  # the output batch's columns, in order
    clock: "StageClock | None" = None

    def process(self, row: dict) -> dict | list[dict]:
        raise NotImplementedError

    def __call__(self, batch: dict) -> dict[str, list]:
        rows = rows_of(batch)
        if self.clock is None:
            out = self._process_rows(rows)
        else:
            with self.clock.timed(len(rows)):
                out = self._process_rows(rows)
        return columns_of(out, self.fields)

    def _process_rows(self, rows: list[dict]) -> list[dict]:
        out: list[dict] = []
        for row in rows:
            result = self.process(row)
            out += result if isinstance(result, list) else [result]
        return out


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


class StageClock:
    """What one actor of a stage did: rows, seconds busy in ``__call__`` and seconds alive since its models were
    loaded, in ``<out>/_stats/<stage>/<actor>.json`` after every call (a few bytes per actor, whatever the corpus).
    Alive minus busy is the time the actor waited for input: a model stage that waits is fed too slowly."""

    def __init__(self, stage: str, out: "Path | str") -> None:
        import os
        import time
        import uuid
        from reid_ray.io import stage_stats_dir

        self.path = stage_stats_dir(out, stage) / f"{os.getpid()}_{uuid.uuid4().hex[:8]}.json"
        self.started = time.perf_counter()
        self.stats: dict[str, float] = {"rows": 0, "busy_s": 0.0, "alive_s": 0.0}

    def timed(self, rows: int):
        import contextlib
        import time

        from reid_ray.io import write_json_atomic

        @contextlib.contextmanager
        def span():
            t0 = time.perf_counter()
            try:
                yield self.stats
            finally:
                now = time.perf_counter()
                self.stats["rows"] += rows
                self.stats["busy_s"] += now - t0
                self.stats["alive_s"] = now - self.started
                write_json_atomic(self.stats, self.path)

        return span()


def stage_report(out: "Path | str", stages: list[str]) -> dict[str, dict]:
    """Sum of every actor's clock per stage (this run's: the job clears ``_stats`` when it starts)."""
    import json

    from reid_ray.io import stage_stats_dir

    report = {}
    for stage in stages:
        files = sorted(stage_stats_dir(out, stage).glob("*.json"))
        clocks = [json.loads(f.read_text()) for f in files]
        total = {k: sum(c.get(k, 0) for c in clocks) for k in {k for c in clocks for k in c}}
        total["idle_s"] = total.get("alive_s", 0.0) - total.get("busy_s", 0.0)
        report[stage] = {"actors": len(clocks), **{k: round(v, 2) if isinstance(v, float) else v for k, v in sorted(total.items())}}
    return report
