"""YOLOX-nano COCO detector (ONNX, Apache-2.0) through onnxruntime: boxes only, masks are filled boxes.

The file comes from the models directory; when missing it is downloaded once from the official release with
its checksum pinned. The copy in ``../shared/models`` is another export of the same network (same pre-processing),
so both checksums are accepted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from reid_ray.models.coco import class_to_category
from reid_ray.records import Instances, clip_boxes

FILENAME = "yolox_nano_coco.onnx"
OFFICIAL_URL = "https://github.com/Megvii-BaseDetection/YOLOX/releases/download/0.1.1rc0/yolox_nano.onnx"
OFFICIAL_SHA256 = "c789161ed43c8269fcd4e67c67eeeb4e80c622da2eb296a20bc6007bd18a0b7d"
SHARED_EXPORT_SHA256 = "e8af074932d4ed7e232278e3055cefcdea3edf178874a3694ae292649fb464dd"
ACCEPTED_SHA256 = (OFFICIAL_SHA256, SHARED_EXPORT_SHA256)
STRIDES = (8, 16, 32)
PAD_VALUE = 114


def resolve_model_file(model: str | None, models_dir: Path) -> Path:
    """An explicit path wins; else the models directory, downloading the official file if absent."""
    from reid_ray.models.download import resolve_model_file as resolve

    return resolve(model, "segmenter.model: YOLOX file", models_dir, FILENAME, OFFICIAL_URL, ACCEPTED_SHA256)


def letterbox(image_bgr: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """Resize keeping aspect, paste top-left on a size x size canvas of 114 (YOLOX's own pre-processing)."""
    h, w = image_bgr.shape[:2]
    r = min(size / h, size / w)
    resized = cv2.resize(image_bgr, (int(round(w * r)), int(round(h * r))), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas, r


def class_aware_nms(boxes: np.ndarray, score: np.ndarray, cls: np.ndarray, score_threshold: float, nms_iou: float) -> np.ndarray:
    """Indices kept by OpenCV's NMS, boxes offset per class so that different classes never suppress each other."""
    offset = cls[:, None].astype(np.float32) * 10000.0
    xywh = np.concatenate([boxes[:, :2] + offset, boxes[:, 2:] - boxes[:, :2]], 1)
    return np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), score.tolist(), score_threshold, nms_iou), int).reshape(-1)


def _grids(size: int) -> tuple[np.ndarray, np.ndarray]:
    grids, strides = [], []
    for s in STRIDES:
        n = size // s
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        grids.append(np.stack([xs, ys], -1).reshape(-1, 2))
        strides.append(np.full((n * n, 1), s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(strides).astype(np.float32)


class YoloxDetector:
    """Implements ``Segmenter`` with box masks; categories from COCO class names in the config."""

    real_masks = False

    def __init__(
        self,
        model_path: Path | str,
        categories: dict[str, list[str]],
        score_threshold: float = 0.35,
        nms_iou: float = 0.45,
        input_size: int = 416,
        num_threads: int = 1,
    ) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        # One Ray actor per CPU: inner threads beyond that only fight over cores.
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        fixed = [d for d in model_input.shape[2:] if isinstance(d, int)]
        if fixed and any(d != input_size for d in fixed):  # else every frame would fail inside onnxruntime
            raise ValueError(
                f"{model_path} takes {'x'.join(map(str, model_input.shape[2:]))} inputs; segmenter.input_size is "
                f"{input_size}: set segmenter.input_size: {fixed[0]} or export the model at that size"
            )
        self.size = input_size
        self.class_to_category = class_to_category(categories)
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.grid, self.stride = _grids(input_size)

    def segment(self, frames: Sequence[np.ndarray]) -> list[Instances]:
        return [self.detect(f) for f in frames]

    def detect(self, frame_rgb: np.ndarray) -> Instances:
        canvas, r = letterbox(frame_rgb[:, :, ::-1], self.size)
        blob = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        out = self.session.run(None, {self.input_name: blob})[0][0]
        return self._decode(out, r, frame_rgb.shape[:2])

    def _decode(self, out: np.ndarray, r: float, frame_shape: tuple[int, int]) -> Instances:
        xy = (out[:, :2] + self.grid) * self.stride
        wh = np.exp(out[:, 2:4]) * self.stride
        class_scores = out[:, 4:5] * out[:, 5:]
        wanted = np.array(sorted(self.class_to_category), dtype=int)
        scores_w = class_scores[:, wanted]
        best = scores_w.argmax(1)
        score = scores_w[np.arange(len(best)), best]
        keep = score >= self.score_threshold
        if not keep.any():
            return Instances.empty()
        xy, wh, score, cls = xy[keep], wh[keep], score[keep], wanted[best[keep]]
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1) / r
        boxes = clip_boxes(boxes, frame_shape)
        idx = class_aware_nms(boxes, score, cls, self.score_threshold, self.nms_iou)
        categories = [self.class_to_category[int(c)] for c in cls[idx]]
        inst = Instances.from_arrays(boxes[idx], score[idx], categories)
        return inst
