"""Sections both video jobs take (pairs.py, reid.py): sources, segmenter, embedder, tracklet distance. Their
defaults are generic; each job's config says where its own differ."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from reid_ray.config.base import Strict


class SourcesConfig(Strict):
    allowed_licenses: list[str] = Field(
        default_factory=lambda: ["synthetic", "CC-BY-4.0", "CAVIAR-research"],
        description="Licences a source must carry to be used; anything else becomes an error record.",
    )
    default_license: str | None = Field(
        None, description="Licence asserted for sources with none (plain files, S3 keys). None: they are refused."
    )
    extensions: list[str] = Field(default_factory=lambda: [".mp4", ".mpg", ".mpeg", ".avi", ".mov", ".mkv", ".webm"])
    s3_endpoint_url: str | None = Field(None, description="S3 API endpoint; None uses AWS (or AWS_ENDPOINT_URL).")
    cache_dir: str | None = Field(None, description="Where S3 videos are downloaded to inside actors; None: a temp dir.")


class SegmenterConfig(Strict):
    backend: Literal["yolox", "yolov8_seg", "sam3", "bench_ground_truth"] = Field(
        "yolox", description="bench_ground_truth: benchmarks only, synthetic ground truth instead of a model (no pixels).",
    )
    model: str | None = Field(
        None, description="File (yolox, yolov8_seg), hub id or local directory (sam3); None: the file in models_dir, "
        "facebook/sam3.",
    )
    categories: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "person": ["person"],
            "animal": ["bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"],
            "product": ["bottle", "cup", "handbag", "backpack", "suitcase", "laptop", "cell phone", "book"],
        },
        description="Category -> COCO class names (detectors) or text prompts (SAM3).",
    )
    score_threshold: float = Field(0.35, ge=0, le=1)
    nms_iou: float = Field(0.45, ge=0, le=1)
    input_size: int = Field(416, ge=32)
    box_mask: Literal["box", "core"] = Field(
        "core", description="Mask of a box-only detection: the filled box, or its central core (less background)."
    )
    device: str = "cpu"
    simulated_seconds_per_frame: float = Field(
        0, ge=0, description="bench_ground_truth only: time spent per frame, standing in for a model's (overlap "
        "benchmarks and fault tests); outputs do not change.",
    )

    @model_validator(mode="after")
    def _simulated_time_only_for_bench(self) -> "SegmenterConfig":
        if self.simulated_seconds_per_frame and self.backend != "bench_ground_truth":
            raise ValueError("simulated_seconds_per_frame applies only to the bench_ground_truth backend")
        return self


class EmbedderChoice(Strict):
    """One patch embedder and the head that pools its patches."""

    backend: Literal["efficientnet_lite0", "osnet_x0_25", "dino", "bench_ground_truth"] = Field(
        "efficientnet_lite0", description="bench_ground_truth: benchmarks only, a function of the synthetic identity.",
    )
    model: str | None = Field(
        None, description="Hub id or local directory (dino); weights file (osnet_x0_25; None: osnet_x0_25_msmt17.pth in models_dir)."
    )
    head: str = Field("mean", description="'mean' or the path of a trained head checkpoint.")
    crop_height: int = Field(256, ge=32)
    crop_width: int = Field(128, ge=32)
    device: str = "cpu"
    split_similarity: float | None = Field(
        None, ge=-1, le=1, description="Pair job: a track splits where consecutive views are less similar in this "
        "embedder's space; None: proposal.split_similarity.",
    )


class EmbedderConfig(EmbedderChoice):
    by_category: dict[str, EmbedderChoice] = Field(
        default_factory=dict,
        description="Category -> its own embedder (people: a person ReID network); other categories use the one above.",
    )

    def for_category(self, category: str) -> EmbedderChoice:
        return self.by_category.get(category) or EmbedderChoice(**self.model_dump(exclude={"by_category"}))


DistanceMethod = Literal["chamfer", "power_chamfer", "percentile"]


class TrackletDistanceConfig(Strict):
    """How tracklets are compared (definitions: reid_ray/tracking/distances.py); a job passes `**cfg.model_dump()`
    to the functions there."""

    method: DistanceMethod = Field(
        "chamfer",
        description="'chamfer': the seed's Chamfer-q, q-th percentile of the pooled nearest-neighbour frame distances "
        "(best-matched frames count); 'power_chamfer': power mean (p) of the nearest-neighbour distances (worst-matched "
        "frames count); 'percentile': q-th percentile of all frame distances.",
    )
    p: float = Field(10.0, gt=0, description="Power of 'power_chamfer': 1 classic Chamfer, larger weights worst frames.")
    q: float = Field(10.0, ge=0, le=100, description="Percentile of 'chamfer' (pooled nearest-neighbour distances) and 'percentile'.")

    @model_validator(mode="after")
    def _parameter_of_the_method(self) -> "TrackletDistanceConfig":
        # 'chamfer' took p (a power mean) before it became the seed's percentile: an old profile's p beside it is
        # refused rather than silently ignored. Checked against the defaults, not the fields set: a dumped config
        # (every field written) must load again.
        defaults = type(self).model_fields
        if self.method != "power_chamfer" and self.p != defaults["p"].default:
            raise ValueError(f"distance p applies to method 'power_chamfer' only; method '{self.method}' takes q (a percentile). "
                             "'chamfer' is the seed's Chamfer-q; the power mean is 'power_chamfer'. With another method "
                             f"p stays at {defaults['p'].default:g}")
        if self.method == "power_chamfer" and self.q != defaults["q"].default:
            raise ValueError("distance q does not apply to method 'power_chamfer' (it takes p)")
        return self


