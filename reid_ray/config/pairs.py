"""Configuration of the pair job (``jobs/generate_pairs.py``): clip pairs -> candidates -> proposed matches ->
routed identity pairs. The defaults are the CPU profile's (``configs/local.yaml``); other profiles state what differs.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from reid_ray.config.base import JobConfig, JobResources, StageResources, Strict
from reid_ray.config.sections import EmbedderChoice, EmbedderConfig, SegmenterConfig, SourcesConfig, TrackletDistanceConfig


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


class ResourcesConfig(JobResources):
    """Per stage of the pair job; fractions of a CPU let the light stages share a core with the model stage."""

    probe: StageResources = Field(default_factory=lambda: StageResources(num_cpus=0.25, max_actors=1),
                                  description="One video per call (batch_size 1): its clip pairs flow on as one block.")
    decode: StageResources = Field(default_factory=lambda: StageResources(num_cpus=0.5, max_actors=2),
                                   description="CPU actors that decode and downscale frames for the model stage.")
    segment: StageResources = Field(default_factory=StageResources, description="The model stage (GPUs in production).")
    route: StageResources = Field(default_factory=lambda: StageResources(num_cpus=0.5, max_actors=2))
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


class PairsJobConfig(JobConfig):
    """The pair job's defaults are the CPU profile's (``configs/local.yaml``: 2 cores, offline, real weights): the
    sections' own defaults, changed here where the profile was tuned."""

    FINGERPRINT_EXCLUDE = {"resources": True, "review": {"project_title", "image_url_prefix", *QA_ONLY_FIELDS},
                           "segmenter": {"simulated_seconds_per_frame"}}

    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    clip_pairs: ClipPairsConfig = Field(default_factory=ClipPairsConfig)
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(max_side_px=960))
    segmenter: SegmenterConfig = Field(default_factory=SegmenterConfig)  # YOLOX-nano (COCO), file in models_dir
    faces: FacesConfig = Field(default_factory=lambda: FacesConfig(upsample=0))
    # A kept person needs a YOLOX score of 0.55 (tracking still links boxes from 0.35): chosen on the gold clips
    # EnterExitCrossingPaths1/2, where it keeps most real people and few of the mannequins, racks and loose boxes
    # (README, Measured).
    quality: QualityConfig = Field(default_factory=lambda: QualityConfig(min_score_by_category={"person": 0.55}))
    # People by OSNet x0.25 (MSMT17 person ReID, osnet_x0_25_msmt17.pth in models_dir), other categories by
    # EfficientNet-Lite0 ImageNet patch features; mean pooling. Split similarity 0.4: below nearly every similarity of
    # consecutive views of one person under OSNet (CAVIAR, Intel); the generic backbone's 0.8 split nearly every
    # track (README, Measured).
    embedder: EmbedderConfig = Field(default_factory=lambda: EmbedderConfig(
        by_category={"person": EmbedderChoice(backend="osnet_x0_25", split_similarity=0.4)}))
    # Routed by P(same) fitted on each run's own certain pairs (reid_ray/calibration.py); tracks compared by
    # Power-Chamfer-3.
    proposal: ProposalConfig = Field(default_factory=lambda: ProposalConfig(
        distance=TrackletDistanceConfig(method="power_chamfer", p=3)))
    review: ReviewConfig = Field(default_factory=ReviewConfig)
    resources: ResourcesConfig = Field(default_factory=lambda: ResourcesConfig(
        num_cpus=2, segment=StageResources(max_actors=2)))
