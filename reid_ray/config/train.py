"""Configuration of head training (``jobs/train.py``), validated before any work. The defaults are the CPU profile's
(``configs/train.yaml``); other profiles state what differs."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from reid_ray.config.base import RayConnection, Strict

# exp(gamma * s) with |s| <= ~1.4 (circle loss logits): float32 overflows near exp(88), float16 near exp(11).
# PML subtracts the max in its logsumexp, but past a few hundred the gradients are so peaked that one pair
# decides the step; the paper's values are 80-256.
MAX_CIRCLE_GAMMA = 512.0


class HeadConfig(Strict):
    kind: Literal["mean", "attention", "transformer"] = "transformer"
    in_dim: int = Field(120, ge=1, description="Patch embedding dim: 120 EfficientNet-Lite0, 384/768 DINO.")
    out_dim: int = Field(128, ge=1)
    d_model: int = Field(128, ge=8, description="transformer: token width.")
    layers: int = Field(2, ge=1, description="transformer: encoder layers.")
    heads: int = Field(4, ge=1, description="transformer: attention heads (must divide d_model).")
    ff_mult: int = Field(2, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    key_dim: int = Field(64, ge=1, description="attention pool: key width.")
    residual_mean: bool = Field(True, description="transformer: output = projected patch mean + a learned correction.")

    @model_validator(mode="after")
    def _heads_divide(self) -> HeadConfig:
        if self.kind == "transformer" and self.d_model % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide d_model ({self.d_model})")
        if self.kind == "mean" and self.out_dim == self.in_dim:
            raise ValueError("kind 'mean' with out_dim == in_dim has nothing to train (use embedder.head: mean)")
        return self

    def spec(self) -> dict[str, Any]:
        """Arguments of ``set_heads.build_head`` for this kind (stored in checkpoints)."""
        if self.kind == "mean":
            return {"kind": "mean", "in_dim": self.in_dim, "out_dim": self.out_dim}
        if self.kind == "attention":
            return {"kind": "attention", "in_dim": self.in_dim, "out_dim": self.out_dim, "key_dim": self.key_dim}
        return {
            "kind": "transformer", "in_dim": self.in_dim, "out_dim": self.out_dim, "d_model": self.d_model,
            "layers": self.layers, "heads": self.heads, "ff_mult": self.ff_mult, "dropout": self.dropout,
            "residual_mean": self.residual_mean,
        }


class LossConfig(Strict):
    m: float = Field(0.25, gt=0, lt=1, description="Circle loss relaxation (ReID default 0.25).")
    gamma: float = Field(128.0, gt=0, description=f"Circle loss scale (ReID default 128; at most {MAX_CIRCLE_GAMMA:g}).")
    max_nonfinite_steps: int = Field(
        5, ge=0, description="Non-finite losses are skipped and counted; this many in a row stop training."
    )

    @field_validator("gamma")
    @classmethod
    def _gamma_sane(cls, v: float) -> float:
        if v > MAX_CIRCLE_GAMMA:
            raise ValueError(
                f"gamma {v:g} is above {MAX_CIRCLE_GAMMA:g}: exp(gamma * similarity) overflows (float16 past ~11, "
                f"float32 past ~88 before max-subtraction) and the loss is dominated by single pairs; use 64-256"
            )
        return v


# Which other tracklets a tracklet without identity (mined from footage) may be pushed away from in the loss.
UnlabelledNegatives = Literal["any", "cooccurring_or_other_video", "cooccurring"]


class SamplerConfig(Strict):
    P: int = Field(16, ge=2, description="Tracklets per batch (per worker).")
    K: int = Field(4, ge=2, description="Views (frames) per tracklet.")
    same_shot_fraction: float = Field(
        0.5, ge=0, le=1, description="Share of the P tracklets drawn from the anchor's shot (hard negatives)."
    )
    other_video_fraction: float = Field(
        1.0, ge=0, le=1, description="Share of the remaining tracklets drawn from other videos (easy negatives); rest: anywhere."
    )
    batches_per_epoch: int | None = Field(None, ge=1, description="None: each worker's tracklets // P.")
    unlabelled_negatives: UnlabelledNegatives = Field(
        "cooccurring_or_other_video",
        description="Negatives of a mined tracklet: 'cooccurring' = only people in view with it (certain); "
        "'cooccurring_or_other_video' = also every other video's (wrong where people recur across videos); "
        "'any' = every other tracklet, including the same person lost and found again in the shot.",
    )


class OptimizerConfig(Strict):
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    cosine: bool = Field(True, description="Cosine decay of the learning rate over the epochs.")
    grad_clip: float | None = Field(5.0, gt=0)


class ScalingSection(Strict):
    num_workers: int = Field(1, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = Field(1.0, gt=0)


class TrainConfig(RayConnection):
    """Defaults: the CPU profile (``configs/train.yaml``): EfficientNet-Lite0 patches (dim 120), 2 gloo workers. GPU:
    scaling.use_gpu=true (NCCL), head.in_dim 384/768 for DINO patches."""

    name: str = Field("set_head", description="Run name: reruns with the same --out and name resume.")
    seed: int = 0
    epochs: int = Field(20, ge=1)
    head: HeadConfig = Field(default_factory=HeadConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    scaling: ScalingSection = Field(default_factory=lambda: ScalingSection(num_workers=2))
    checkpoints_to_keep: int = Field(2, ge=1)
