"""Train a set head with circle loss on Ray Train (``TorchTrainer``, DDP: gloo on CPU, NCCL on GPU).

Each worker reads the Parquet table, takes its own shard of shots from ``PKSampler`` and runs DDP steps;
the loss gathers embeddings from all workers. Rank 0 reports a checkpoint per epoch::

    <checkpoint>/head.pt       ``set_heads.save_head`` format: ``TrainedHead(path)`` / ``embedder.head: path``
    <checkpoint>/state.pt      optimizer + scheduler state and the epoch, for resuming
    <checkpoint>/history.json  metrics of every epoch so far

Resume (Ray Train V2, the default in Ray 2.60, where ``TorchTrainer.restore/can_restore`` are deprecated
and raise): a rerun with the same ``RunConfig(storage_path, name)`` finds the run's checkpoint-manager
snapshot, and ``ray.train.get_checkpoint()`` in the loop returns the latest checkpoint; training continues
at the next epoch.
"""
from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from reid_ray.config import TrainConfig

HEAD_FILE, STATE_FILE, HISTORY_FILE = "head.pt", "state.pt", "history.json"


def _reduce_mean(values: list[float]) -> list[float]:
    """Mean of each value over workers (no-op without DDP)."""
    t = torch.tensor(values, dtype=torch.float64)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        t = t.to("cuda" if torch.distributed.get_backend() == "nccl" else "cpu")
        torch.distributed.all_reduce(t)
        t /= torch.distributed.get_world_size()
    return t.cpu().tolist()


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint

    from reid_ray.models.set_heads import build_head, pad_sets, save_head
    from reid_ray.train.data import read_samples
    from reid_ray.train.losses import NonFiniteGuard, certain_pairs_loss, make_circle_loss
    from reid_ray.train.sampler import PKSampler, TrackletIndex

    cfg = TrainConfig.model_validate(loop_config["train"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    table = read_samples(loop_config["data"])
    if table.dim != cfg.head.in_dim:
        raise ValueError(f"data patches have dim {table.dim}, head.in_dim is {cfg.head.in_dim}")
    index = TrackletIndex.from_table(table)
    sampler = PKSampler(index, cfg.sampler, cfg.seed, rank, world)
    mode = cfg.sampler.unlabelled_negatives
    may_be_negative = None if mode == "any" else (lambda a, b: index.may_be_negatives(a, b, mode))

    torch.manual_seed(cfg.seed)  # same init everywhere (DDP also broadcasts rank 0's weights)
    spec = cfg.head.spec()
    model = ray.train.torch.prepare_model(build_head(spec))
    device = ray.train.torch.get_device()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optimizer.lr, weight_decay=cfg.optimizer.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs) if cfg.optimizer.cosine else None
    loss_fn = make_circle_loss(cfg.loss)
    guard = NonFiniteGuard(cfg.loss.max_nonfinite_steps)

    start, history = 0, []
    ckpt = ray.train.get_checkpoint()
    if ckpt:
        with ckpt.as_directory() as d:
            state = torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=True)
            head = torch.load(Path(d) / HEAD_FILE, map_location="cpu", weights_only=True)
            history = json.loads((Path(d) / HISTORY_FILE).read_text())
        _unwrap(model).load_state_dict(head["state_dict"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None and state.get("scheduler"):
            sched.load_state_dict(state["scheduler"])
        start = int(state["epoch"]) + 1

    for epoch in range(start, cfg.epochs):
        model.train()
        sampler.set_epoch(epoch)
        t0, losses, skipped_before, n_samples = time.perf_counter(), [], guard.skipped, 0
        lr = opt.param_groups[0]["lr"]
        for rows, labels in sampler:
            x, valid = pad_sets([table.patches[r] for r in rows], cfg.head.in_dim)
            emb = model(x.to(device), valid.to(device))
            loss = certain_pairs_loss(loss_fn, emb, torch.as_tensor(labels, device=device), index.row_tracklet[rows],
                                      may_be_negative)
            n_samples += len(rows)
            if not guard.ok(loss):
                continue
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optimizer.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optimizer.grad_clip)
            opt.step()
            losses.append(loss.item() / world)  # the wrapper scales by world size for DDP's gradient mean
        if sched is not None:
            sched.step()
        elapsed = time.perf_counter() - t0
        mean_loss = sum(losses) / len(losses) if losses else math.nan
        loss_avg, per_worker_sps = _reduce_mean([mean_loss, n_samples / max(elapsed, 1e-9)])
        metrics = {
            "epoch": epoch, "loss": loss_avg, "nonfinite_skips": guard.skipped - skipped_before,
            "nonfinite_skips_total": guard.skipped, "lr": lr, "steps": len(sampler),
            "samples_per_s": per_worker_sps * world, "epoch_s": elapsed, "workers": world,
        }
        history.append(metrics)
        if rank == 0:
            with tempfile.TemporaryDirectory() as tmp:
                save_head(Path(tmp) / HEAD_FILE, _unwrap(model), spec, extra={"epoch": epoch, "loss": loss_avg})
                torch.save({"epoch": epoch, "optimizer": opt.state_dict(),
                            "scheduler": sched.state_dict() if sched is not None else None}, Path(tmp) / STATE_FILE)
                (Path(tmp) / HISTORY_FILE).write_text(json.dumps(history, indent=1))
                ray.train.report(metrics, checkpoint=Checkpoint.from_directory(tmp))
        else:
            ray.train.report(metrics)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def run_training(cfg: TrainConfig, data: str, out: str, name: str | None = None):
    """Fit (or resume) the run ``out/<name>``; returns Ray's ``Result`` (``.checkpoint``: the latest)."""
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    storage = out if "://" in out else str(Path(out).resolve())
    data = data if "://" in data else str(Path(data).resolve())  # workers may run in another directory
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"train": cfg.model_dump(mode="json"), "data": data},
        torch_config=TorchConfig(backend="nccl" if cfg.scaling.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=cfg.scaling.num_workers, use_gpu=cfg.scaling.use_gpu,
            resources_per_worker={"CPU": cfg.scaling.cpus_per_worker, **({"GPU": 1} if cfg.scaling.use_gpu else {})},
        ),
        run_config=RunConfig(
            name=name or cfg.name, storage_path=storage,
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.checkpoints_to_keep),  # latest N by report order
        ),
    )
    return trainer.fit()


def read_history(checkpoint_dir: str | Path) -> list[dict]:
    return json.loads((Path(checkpoint_dir) / HISTORY_FILE).read_text())
