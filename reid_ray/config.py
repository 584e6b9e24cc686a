"""Typed configuration: one file of defaults (these models), YAML profiles override a few keys,
the command line overrides those (``--set a.b=value`` or a job's own flags).

A bad value stops a job before any work with a message naming the field, exit code 2.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Literal, Sequence, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CONFIG_ERROR_EXIT_CODE = 2
MODELS_DIR_ENV = "REID_RAY_MODELS_DIR"


class Strict(BaseModel):
    # allow_inf_nan=False: a nan or inf would pass every bound and fail later inside actors, after the run started
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


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


class ClipPairsConfig(Strict):
    time_gap_s: float | tuple[float, float] = Field(10.0, description="Gap between clip starts, or a [min, max] range.")
    clip_length_s: float = Field(2.0, gt=0)
    pairs_per_video: int = Field(4, ge=1)
    seed: int = 0
    shot_constraint: Literal["any", "same_shot", "across_cut"] = "any"

    @field_validator("time_gap_s")
    @classmethod
    def _gap_positive(cls, v: float | tuple[float, float]) -> float | tuple[float, float]:
        lo, hi = (v, v) if isinstance(v, (int, float)) else v
        if lo < 0 or hi < lo:
            raise ValueError("time gap must be >= 0 and a range must be [min, max] with min <= max")
        return v


class SamplingConfig(Strict):
    frames_per_clip: int = Field(6, ge=1, description="Frames sampled evenly over each clip (embedded, filtered).")
    track_step_s: float = Field(
        0.1, gt=0, description="Detections are linked into tracks on frames this far apart: IoU is reliable when it is short."
    )
    max_side_px: int = Field(1280, ge=64, description="Frames larger than this are downscaled for the models.")


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


class FacesConfig(Strict):
    backend: Literal["dlib", "none"] = "dlib"
    upsample: int = Field(1, ge=0, le=3, description="dlib HOG upsampling: finds smaller faces, costs time.")
    min_face_px: int = Field(24, ge=8)
    min_score: float = Field(0.6, ge=0, le=1, description="Squashed HOG margin; 0.6 drops dlib's weakest hits.")
    as_candidates: bool = Field(True, description="Faces also become candidates of category 'face'.")


class QualityConfig(Strict):
    min_height_px: int = Field(32, ge=1)
    min_area_px: int = Field(600, ge=1)
    border_margin_px: int = Field(2, ge=0, description="A box this close to the frame edge is cut by the border.")
    max_overlap: float = Field(0.15, ge=0, le=1, description="Max share of a box covered by another instance.")
    min_sharpness: float = Field(20.0, ge=0, description="Variance of the Laplacian inside the box.")
    max_similarity_in_frame: float = Field(
        0.97, ge=-1, le=1, description="An instance this similar to another in its frame is not visually distinct."
    )
    min_score_by_category: dict[str, float] = Field(
        default_factory=dict,
        description="Category -> lowest detector score of a kept candidate. Tracking links every detection above "
        "segmenter.score_threshold, but a weakly detected 'person' is often an object (mannequin, rack, a loose box).",
    )

    @field_validator("min_score_by_category")
    @classmethod
    def _scores_in_range(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: s for k, s in v.items() if not 0 <= s <= 1}
        if bad:
            raise ValueError(f"scores must be in [0, 1], got {bad}")
        return v


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
                             "'chamfer' is the seed's Chamfer-q; the power mean is 'power_chamfer'")
        if self.method == "power_chamfer" and self.q != defaults["q"].default:
            raise ValueError("distance q does not apply to method 'power_chamfer' (it takes p)")
        return self


class CalibrationConfig(Strict):
    """Routing by P(same | track distance), fitted per category on each run's own certain pairs."""

    target_error: float = Field(
        0.01, gt=0, lt=1, description="Highest estimated share of wrong labels in each auto band (accept, reject)."
    )
    max_error_each: float = Field(
        0.1, gt=0, le=1, description="No auto label for a pair whose own estimated error is above this, however sure "
        "the rest of its band is (users train on auto labels unseen).",
    )
    min_positives: int = Field(20, ge=2, description="Certain same-individual pairs a category needs to be fitted.")
    min_negatives: int = Field(20, ge=2, description="Certain different-individual pairs a category needs to be fitted.")
    bridge_share: float = Field(
        0.5, ge=0, le=1, description="Share of clip pairs whose tracks are also followed across the gap: certain "
        "pairs at the gap's own scale (reid_ray/tracking/bridge.py); costs detection over the gap.",
    )
    min_bridged: int = Field(
        8, ge=1, description="Tracks followed across the gap needed to place the same-individual distances at the gap's "
        "scale (their median); with fewer, the within-clip pairs are used as they are.",
    )
    min_video_proposals: int = Field(
        30, ge=1, description="A video with this many proposed matches of a category gets its own share of true matches."
    )
    duplicate_containment: float = Field(
        0.6, ge=0, le=1, description="Two boxes on one frame whose overlap covers this share of the smaller one may be "
        "one individual: such tracks are not certain negatives.",
    )


class StaticClutterConfig(Strict):
    """A 'person' that does not move within either clip and stands at the same place across the gap is, on real
    footage, mostly a fixed object (a mannequin, a rack); were it a person, the pair would show the same pixels
    twice and teach a ReID model nothing. Such matches are dropped (or sent to humans), never auto 'identical'."""

    enabled: bool = True
    action: Literal["drop", "review"] = "drop"
    min_iou_across_gap: float = Field(0.8, ge=0, le=1, description="Box overlap of the two sides' mean boxes.")
    max_motion: float = Field(0.1, ge=0, description="Largest centre shift within a track, in box heights.")
    max_score: float = Field(1.0, ge=0, le=1, description="Only tracks whose mean detector score is at or below this.")


class ProposalConfig(Strict):
    method: Literal["mutual_nn", "hungarian"] = "mutual_nn"
    routing: Literal["calibrated", "thresholds"] = Field(
        "calibrated", description="'calibrated': by P(same) fitted on the run's certain pairs; 'thresholds': fixed "
        "thresholds on 1 - track distance.",
    )
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)
    distance: TrackletDistanceConfig = Field(default_factory=TrackletDistanceConfig, description="How two tracks' views are compared.")
    accept_threshold: float = Field(0.95, ge=0, le=1, description="routing 'thresholds': confidence at or above: auto 'identical'.")
    reject_threshold: float = Field(0.85, ge=0, le=1, description="routing 'thresholds': confidence below: auto 'same_category_different_instance'.")
    min_track_frames: int = Field(2, ge=1, description="A candidate must be seen on this many sampled frames.")
    track_iou: float = Field(0.3, ge=0, le=1)
    split_similarity: float = Field(0.8, ge=-1, le=1, description="A track splits where consecutive views are less similar.")
    hard_negatives_per_match: int = Field(2, ge=0)
    unrelated_per_clip_pair: int = Field(2, ge=0)
    static_clutter: StaticClutterConfig = Field(default_factory=StaticClutterConfig)

    @model_validator(mode="after")
    def _ordered(self) -> "ProposalConfig":
        if self.reject_threshold > self.accept_threshold:
            raise ValueError("reject_threshold must not exceed accept_threshold")
        return self


class ReviewConfig(Strict):
    project_title: str = "reid-ray identity pairs"
    thumb_height: int = Field(256, ge=64)
    context_px: int = Field(48, ge=0, description="Frame context kept around each box in a thumbnail.")
    image_url_prefix: str | None = Field(
        None, description="What a Label Studio task's image is: this prefix, then the packet's file name. None: "
        "Label Studio's local-files URL relative to --out (/data/local-files/?d=review/<pair_id>.png, served when "
        "LOCAL_FILES_DOCUMENT_ROOT is --out, as python -m reid_ray.review.serve sets it up), or on S3 the packet's "
        "s3:// URI, which Label Studio resolves through an S3 source storage connected to the project.",
    )
    gold_share: float = Field(0.05, ge=0, le=1, description=(
        "Share of the very sure auto-decided matches sent to review as gold questions (answers in review/gold.jsonl)."))
    gold_min_confidence: float = Field(0.98, gt=0.5, le=1, description=(
        "A gold question's P(same) is at least this (identical) or at most one minus it (rejected)."))
    target_seconds: float = Field(30.0, gt=0, description="The time one verdict should take; QA reports against it.")
    min_gold_accuracy: float = Field(0.8, ge=0, le=1, description="Annotators scoring below this on gold questions are flagged or dropped.")
    min_gold_answers: int = Field(5, ge=1, description="Gold answers an annotator needs before their accuracy is judged.")
    on_low_accuracy: Literal["flag", "drop"] = Field("flag", description="drop: their verdicts are not counted.")


# Read by form_pairs only: changing them changes no mined result.
QA_ONLY_FIELDS = ("target_seconds", "min_gold_accuracy", "min_gold_answers", "on_low_accuracy")


class StageResources(Strict):
    num_cpus: float = Field(1.0, gt=0)
    num_gpus: float = Field(0.0, ge=0)
    min_actors: int = Field(1, ge=1)
    max_actors: int = Field(1, ge=1)
    batch_size: int = Field(1, ge=1)


class ResourcesConfig(Strict):
    """Per stage of the pair job; fractions of a CPU let the light stages share a core with the model stage."""

    probe: StageResources = Field(default_factory=lambda: StageResources(num_cpus=0.25, max_actors=1),
                                  description="One video per call (batch_size 1): its clip pairs flow on as one block.")
    decode: StageResources = Field(default_factory=lambda: StageResources(num_cpus=0.5, max_actors=2),
                                   description="CPU actors that decode and downscale frames for the model stage.")
    segment: StageResources = Field(default_factory=StageResources, description="The model stage (GPUs in production).")
    route: StageResources = Field(default_factory=lambda: StageResources(num_cpus=0.5, max_actors=2))
    ray_address: str | None = Field(None, description="None: join a running cluster if any, else start a local one.")
    num_cpus: int | None = Field(None, description="CPUs of a locally started Ray (None: all).")
    object_store_memory_mb: int | None = Field(
        None, ge=64, description="Most the pipeline keeps in the object store at once (decoded clip pairs waiting for "
        "the model stage): decode then waits instead of running ahead. None: Ray Data's own share of the store.",
    )

    @field_validator("probe")
    @classmethod
    def _one_video_per_probe_call(cls, v: StageResources) -> StageResources:
        if v.batch_size != 1:
            raise ValueError("resources.probe.batch_size must be 1: the probe takes one video per call, so that each "
                             "video's clip pairs move on to decode as a block of their own")
        return v


class JobConfig(Strict):
    """What every job's config has: where model files live."""

    models_dir: str | None = Field(None, description=f"Directory of model files; env {MODELS_DIR_ENV} overrides.")

    def resolved_models_dir(self) -> Path:
        """Environment first (so CI and clusters can point at a shared folder), then config, then ~/.cache."""
        d = os.environ.get(MODELS_DIR_ENV) or self.models_dir or "~/.cache/reid_ray/models"
        return Path(d).expanduser()

    def run_record(self) -> dict:
        """The config as a run records it (``_run.json``): ``models_dir`` the folder the run actually used."""
        return self.model_dump(mode="json") | {"models_dir": str(self.resolved_models_dir())}


class PairsJobConfig(JobConfig):
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    clip_pairs: ClipPairsConfig = Field(default_factory=ClipPairsConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    segmenter: SegmenterConfig = Field(default_factory=SegmenterConfig)
    faces: FacesConfig = Field(default_factory=FacesConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    embedder: EmbedderConfig = Field(default_factory=EmbedderConfig)
    proposal: ProposalConfig = Field(default_factory=ProposalConfig)
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)

    def fingerprint(self) -> str:
        """Key of everything that changes results (not where Ray runs): a rerun with another one is refused."""
        payload = self.model_dump(mode="json", exclude={"resources": True, "review": {"project_title", "image_url_prefix", *QA_ONLY_FIELDS},
                                                        "segmenter": {"simulated_seconds_per_frame"}})
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the field."""


def _parse_value(text: str) -> Any:
    # YAML parsing gives numbers, booleans, lists ("[1, 5]") and null the way a user types them.
    return yaml.safe_load(text)


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key.path=value")
        key, value = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{p}' is not a section")
        node[parts[-1]] = _parse_value(value)
    return data


def _as_section(annotation: Any) -> type[BaseModel] | None:
    """The config model an annotation holds (``X`` or ``X | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)), None)


def _section_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str] | None:
    """The valid keys of the section at ``loc`` (``("proposal", "calibration")``; ``()``: the top level) of
    ``model``; None when ``loc`` is no section."""
    node: Any = model
    parts = list(loc)
    while parts:
        section = _as_section(node)
        part = parts.pop(0)
        if section is None or part not in section.model_fields:
            return None
        node = section.model_fields[part].annotation
        if get_origin(node) is dict:  # sections by name (embedder.by_category.<category>): the name is any key
            if not parts:
                return None
            parts.pop(0)
            node = get_args(node)[1]
    section = _as_section(node)
    return sorted(section.model_fields) if section is not None else None


def _unknown_key(loc: Sequence[str | int], model: type[BaseModel], origin: str) -> str | None:
    """What to say about a key no section has: the key, its section, where it was set, the closest valid key and
    every valid one (pydantic's own words name none of them)."""
    key, section = str(loc[-1]), ".".join(str(p) for p in loc[:-1])
    keys = _section_keys(model, loc[:-1])
    if keys is None:
        return None
    close = difflib.get_close_matches(key, keys, n=1)
    return (f"config error: {'.'.join(str(p) for p in loc)}: unknown key '{key}' "
            f"{f'in section {section!r}' if section else 'at the top level'}{f' ({origin})' if origin else ''}."
            f"{f' Did you mean {close[0]!r}?' if close else ''} Valid keys{f' of {section}' if section else ''}: {', '.join(keys)}")


def format_validation_error(err: ValidationError, model: type[BaseModel] | None = None,
                            origin: Callable[[str], str] = lambda field: "") -> str:
    """One line per error, naming the field; ``origin(field)`` says where a value was set (file or override)."""
    lines = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "<root>"
        unknown = _unknown_key(e["loc"], model, origin(field)) if e["type"] == "extra_forbidden" and model and e["loc"] else None
        lines.append(unknown or f"config error: {field}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (), model: type[BaseModel] = PairsJobConfig):
    """Defaults <- YAML profile <- overrides. Raises ConfigError naming the field."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        data = loaded
    data = apply_overrides(data, overrides)
    set_by = {item.split("=", 1)[0].strip(): item for item in overrides}

    def origin(field: str) -> str:
        # the override that set the key, a section above it or a key inside it; else the profile
        item = next((v for k, v in set_by.items() if field == k or field.startswith(k + ".") or k.startswith(field + ".")), None)
        return f"set by override '{item}'" if item else f"in {path}" if path is not None else ""

    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, model, origin)) from None


def load_config_or_exit(path: str | Path | None, overrides: Sequence[str] = (), model: type[BaseModel] = PairsJobConfig):
    """For jobs: print the field-level message and exit 2 before any work."""
    try:
        return load_config(path, overrides, model)
    except ConfigError as err:
        print(str(err), file=sys.stderr)
        raise SystemExit(CONFIG_ERROR_EXIT_CODE) from None
