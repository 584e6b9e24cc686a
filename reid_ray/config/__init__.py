"""Typed configuration of every job: the defaults are code (these models) and equal the tuned CPU profiles; a YAML
profile in ``configs/`` states only what differs; ``--set a.b=value`` (or a job's own flags) overrides on top.

- ``base.py``: what every config is made of (``Strict`` sections, ``JobConfig`` with its run fingerprint, the Ray
  section ``RayConnection`` / ``JobResources``, ``StageResources``).
- ``loader.py``: ``load_config`` (defaults <- profile <- overrides, merged section by section) and its error messages.
- ``sections.py``: sections both video jobs take (sources, segmenter, embedder, tracklet distance).
- ``pairs.py``: the pair job (``PairsJobConfig``; CPU profile ``configs/local.yaml``).
- ``reid.py``: the long-video and training-set jobs (``ReidJobConfig``, ``TrainingSetJobConfig``; ``configs/reid_local.yaml``).
- ``train.py``: head training (``TrainConfig``; ``configs/train.yaml``).

A bad value stops a job before any work with a message naming the field, exit code 2.
"""
from reid_ray.config.base import (
    CONFIG_ERROR_EXIT_CODE,
    MODELS_DIR_ENV,
    ConfigError,
    JobConfig,
    JobResources,
    RayConnection,
    StageResources,
    Strict,
)
from reid_ray.config.loader import apply_overrides, format_validation_error, load_config, load_config_or_exit
from reid_ray.config.pairs import (
    QA_ONLY_FIELDS,
    CalibrationConfig,
    ClipPairsConfig,
    FacesConfig,
    PairsJobConfig,
    ProposalConfig,
    QualityConfig,
    ResourcesConfig,
    ReviewConfig,
    SamplingConfig,
    StaticClutterConfig,
)
from reid_ray.config.reid import (
    ClusteringConfig,
    DistanceConfig,
    MiningConfig,
    OutputsConfig,
    ReidJobConfig,
    ReidResourcesConfig,
    ShotsConfig,
    TrackingConfig,
    TrainingSetJobConfig,
)
from reid_ray.config.sections import (
    DistanceMethod,
    EmbedderChoice,
    EmbedderConfig,
    SegmenterConfig,
    SourcesConfig,
    TrackletDistanceConfig,
)
from reid_ray.config.train import (
    MAX_CIRCLE_GAMMA,
    HeadConfig,
    LossConfig,
    OptimizerConfig,
    SamplerConfig,
    ScalingSection,
    TrainConfig,
    UnlabelledNegatives,
)

__all__ = [
    "CONFIG_ERROR_EXIT_CODE", "MAX_CIRCLE_GAMMA", "MODELS_DIR_ENV", "QA_ONLY_FIELDS",
    "CalibrationConfig", "ClipPairsConfig", "ClusteringConfig", "ConfigError", "DistanceConfig", "DistanceMethod",
    "EmbedderChoice", "EmbedderConfig", "FacesConfig", "HeadConfig", "JobConfig", "JobResources", "LossConfig",
    "MiningConfig", "OptimizerConfig", "OutputsConfig", "PairsJobConfig", "ProposalConfig", "QualityConfig",
    "RayConnection", "ReidJobConfig", "ReidResourcesConfig", "ResourcesConfig", "ReviewConfig", "SamplerConfig",
    "SamplingConfig", "ScalingSection", "SegmenterConfig", "ShotsConfig", "SourcesConfig", "StageResources",
    "StaticClutterConfig", "Strict", "TrackingConfig", "TrackletDistanceConfig", "TrainConfig", "TrainingSetJobConfig",
    "UnlabelledNegatives", "apply_overrides", "format_validation_error", "load_config", "load_config_or_exit",
]
