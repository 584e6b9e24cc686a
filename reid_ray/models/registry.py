"""Backends chosen by name: adding one is one new file plus one line here. Imports are lazy so a CPU
profile never imports transformers' SAM3 and a GPU profile never needs onnxruntime."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

from reid_ray.config import EmbedderChoice, PairsJobConfig
from reid_ray.models.base import FaceDetector, Head, PatchEmbedder, Segmenter


def _yolox_file(cfg: PairsJobConfig) -> Path:
    from reid_ray.models.yolox import resolve_model_file

    return resolve_model_file(cfg.segmenter.model, cfg.resolved_models_dir())


def _yolox(cfg: PairsJobConfig) -> Segmenter:
    from reid_ray.models.yolox import YoloxDetector

    s = cfg.segmenter
    return YoloxDetector(_yolox_file(cfg), s.categories, s.score_threshold, s.nms_iou, s.input_size)


def _yolov8_seg_file(cfg: PairsJobConfig) -> Path:
    from reid_ray.models.yolov8_seg import resolve_model_file

    return resolve_model_file(cfg.segmenter.model, cfg.resolved_models_dir())


def _yolov8_seg(cfg: PairsJobConfig) -> Segmenter:
    from reid_ray.models.yolov8_seg import YoloV8SegSegmenter

    s = cfg.segmenter
    return YoloV8SegSegmenter(_yolov8_seg_file(cfg), s.categories, s.score_threshold, s.nms_iou)


def _sam3(cfg: PairsJobConfig) -> Segmenter:
    from reid_ray.models.sam3 import Sam3Segmenter

    s = cfg.segmenter
    return Sam3Segmenter(model=s.model or "facebook/sam3", categories=s.categories, score_threshold=s.score_threshold, device=s.device)


def _bench_ground_truth(cfg: PairsJobConfig) -> Segmenter:
    from reid_ray.models.bench_ground_truth import BenchGroundTruthSegmenter  # benchmarks only, never for data

    return BenchGroundTruthSegmenter(seconds_per_frame=cfg.segmenter.simulated_seconds_per_frame)


SEGMENTERS: dict[str, Callable[[PairsJobConfig], Segmenter]] = {
    "yolox": _yolox, "yolov8_seg": _yolov8_seg, "sam3": _sam3, "bench_ground_truth": _bench_ground_truth,
}
# Model files a segmenter backend reads, resolved (downloaded if missing) by ``preflight``; hub models (sam3) are not.
SEGMENTER_FILES: dict[str, Callable[[PairsJobConfig], Path]] = {"yolox": _yolox_file, "yolov8_seg": _yolov8_seg_file}
# Each backend's class, so a stage can ask what it gives (``real_masks``) without loading its model.
SEGMENTER_CLASSES: dict[str, str] = {
    "yolox": "reid_ray.models.yolox:YoloxDetector", "yolov8_seg": "reid_ray.models.yolov8_seg:YoloV8SegSegmenter",
    "sam3": "reid_ray.models.sam3:Sam3Segmenter", "bench_ground_truth": "reid_ray.models.bench_ground_truth:BenchGroundTruthSegmenter",
}


def segmenter_class(backend: str) -> type:
    if backend not in SEGMENTER_CLASSES:
        raise ValueError(f"segmenter.backend '{backend}' is not registered; use one of {sorted(SEGMENTER_CLASSES)}")
    module, name = SEGMENTER_CLASSES[backend].split(":")
    return getattr(importlib.import_module(module), name)


def real_masks(backend: str) -> bool:
    """Whether the segmenter of ``backend`` gives masks that follow the object (else masks made from its boxes)."""
    return bool(segmenter_class(backend).real_masks)


def build_segmenter(cfg: PairsJobConfig) -> Segmenter:
    if cfg.segmenter.backend not in SEGMENTERS:
        raise ValueError(f"segmenter.backend '{cfg.segmenter.backend}' has no builder here; use one of {sorted(SEGMENTERS)}")
    return SEGMENTERS[cfg.segmenter.backend](cfg)


def build_face_detector(cfg: PairsJobConfig) -> FaceDetector | None:
    if cfg.faces.backend == "none":
        return None
    from reid_ray.models.dlib_faces import DlibFaceDetector

    return DlibFaceDetector(upsample=cfg.faces.upsample, min_face_px=cfg.faces.min_face_px, min_score=cfg.faces.min_score)


def _efficientnet_lite0(cfg: PairsJobConfig, e: EmbedderChoice) -> PatchEmbedder:
    from reid_ray.models.efficientnet import EfficientNetPatchEmbedder

    return EfficientNetPatchEmbedder(e.crop_height, e.crop_width, e.device)


def _osnet_file(cfg: PairsJobConfig, e: EmbedderChoice) -> Path:
    from reid_ray.models.osnet import resolve_weights

    return resolve_weights(e.model, cfg.resolved_models_dir())


def _osnet_x0_25(cfg: PairsJobConfig, e: EmbedderChoice) -> PatchEmbedder:
    from reid_ray.models.osnet import OSNetPatchEmbedder

    return OSNetPatchEmbedder(_osnet_file(cfg, e), e.crop_height, e.crop_width, e.device)


def _dino(cfg: PairsJobConfig, e: EmbedderChoice) -> PatchEmbedder:
    from reid_ray.models.dino import DinoPatchEmbedder

    return DinoPatchEmbedder(model=e.model or "facebook/dinov2-small", crop_height=e.crop_height, crop_width=e.crop_width, device=e.device)


def _bench_ground_truth_embedder(cfg: PairsJobConfig, e: EmbedderChoice) -> PatchEmbedder:
    from reid_ray.models.bench_ground_truth import BenchGroundTruthEmbedder  # benchmarks only, never for data

    return BenchGroundTruthEmbedder()


EMBEDDERS: dict[str, Callable[[PairsJobConfig, EmbedderChoice], PatchEmbedder]] = {
    "efficientnet_lite0": _efficientnet_lite0, "osnet_x0_25": _osnet_x0_25, "dino": _dino,
    "bench_ground_truth": _bench_ground_truth_embedder,
}
# Model files an embedder backend reads, resolved (downloaded if missing) by ``preflight``; hub models (dino) are not.
EMBEDDER_FILES: dict[str, Callable[[PairsJobConfig, EmbedderChoice], Path]] = {"osnet_x0_25": _osnet_file}


def build_embedder(cfg: PairsJobConfig, choice: EmbedderChoice | None = None) -> PatchEmbedder:
    """The embedder of ``choice`` (default: the config's own ``embedder``)."""
    e = choice or cfg.embedder
    if e.backend not in EMBEDDERS:
        raise ValueError(f"embedder.backend '{e.backend}' has no builder here; use one of {sorted(EMBEDDERS)}")
    return EMBEDDERS[e.backend](cfg, e)


def preflight(cfg: PairsJobConfig) -> None:
    """Fetch model files in the driver, once, before any actor starts: a missing file or a failed download is
    one clear error instead of every actor failing at start-up (and several actors downloading at once)."""
    if cfg.segmenter.backend in SEGMENTER_FILES:
        SEGMENTER_FILES[cfg.segmenter.backend](cfg)
    for e in (cfg.embedder, *cfg.embedder.by_category.values()):
        if e.backend in EMBEDDER_FILES:
            EMBEDDER_FILES[e.backend](cfg, e)


def build_head(cfg: PairsJobConfig, choice: EmbedderChoice | None = None) -> Head:
    from reid_ray.models.heads import MeanPoolHead

    e = choice or cfg.embedder
    if e.head == "mean":
        return MeanPoolHead()
    from reid_ray.models.set_heads import TrainedHead

    return TrainedHead(e.head, device=e.device)


def build_category_embedders(cfg: PairsJobConfig):
    """One embedder and head per category that names its own (``embedder.by_category``), one for the rest."""
    from reid_ray.models.category_embedders import CategoryEmbedders

    default = (build_embedder(cfg), build_head(cfg))
    own = {c: (build_embedder(cfg, e), build_head(cfg, e)) for c, e in cfg.embedder.by_category.items()}
    return CategoryEmbedders(default, own)
