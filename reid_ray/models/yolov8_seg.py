"""YOLOv8n-seg int8 COCO (TFLite, Ultralytics: AGPL-3.0) through ai-edge-litert: boxes and real instance masks.

An optional backend: the file is never downloaded and never shipped with the project; it is read from the models
directory (or ``segmenter.model``) and must carry the checksum below. Install the runtime with
``pip install -e '.[tflite]'``. Layout of the export: input 1x640x640x3 float RGB / 255 (letterbox, pad 114);
outputs 1x116x8400 (cx, cy, w, h normalised to the input, 80 class scores, 32 mask coefficients) and
1x160x160x32 mask prototypes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from reid_ray.models.coco import class_to_category
from reid_ray.models.yolox import class_aware_nms, letterbox
from reid_ray.records import Instances, clip_boxes

FILENAME = "yolov8n-seg_int8_coco_ul8.2.44.tflite"
SHA256 = "872216b0ef2b1afa051945edd0cb46bab673c19106a12b77f66e2ceca25c21fa"
N_CLASSES = 80
N_COEFFS = 32


def resolve_model_file(model: str | None, models_dir: Path) -> Path:
    """An explicit path wins; else ``models_dir/FILENAME`` with its checksum (no download: AGPL, opt-in)."""
    from reid_ray.models.download import DownloadError
    from reid_ray.models.download import resolve_model_file as resolve

    try:
        return resolve(model, "segmenter.model: YOLOv8-seg file", models_dir, FILENAME, None, SHA256)
    except DownloadError as err:
        raise DownloadError(f"{err} The YOLOv8-seg backend is AGPL-3.0 and opt-in: export it with Ultralytics "
                            f"(int8 TFLite) and place it there, or point segmenter.model at it.") from err


class YoloV8SegSegmenter:
    """Implements ``Segmenter`` with instance masks; categories from COCO class names in the config."""

    real_masks = True

    def __init__(
        self,
        model_path: Path | str,
        categories: dict[str, list[str]],
        score_threshold: float = 0.35,
        nms_iou: float = 0.45,
        num_threads: int = 1,
        mask_threshold: float = 0.5,
    ) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as err:  # an optional dependency: say how to get it
            raise ImportError("segmenter.backend 'yolov8_seg' needs ai-edge-litert: pip install -e '.[tflite]'") from err

        self.interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        inp = self.interpreter.get_input_details()[0]
        self.input_index = inp["index"]
        self.size = int(inp["shape"][1])
        outs = {tuple(d["shape"][1:]): d["index"] for d in self.interpreter.get_output_details()}
        n_rows = 4 + N_CLASSES + N_COEFFS
        pred_shape = next((s for s in outs if len(s) == 2 and s[0] == n_rows), None)
        proto_shape = next((s for s in outs if len(s) == 3 and s[2] == N_COEFFS), None)
        if pred_shape is None or proto_shape is None:
            raise ValueError(f"{model_path}: outputs {list(outs)} are not a YOLOv8-seg export ({n_rows} x anchors, protos x {N_COEFFS})")
        self.pred_index, self.proto_index = outs[pred_shape], outs[proto_shape]
        self.class_to_category = class_to_category(categories)
        self.wanted = np.array(sorted(self.class_to_category), dtype=int)
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.mask_threshold = mask_threshold

    def segment(self, frames: Sequence[np.ndarray]) -> list[Instances]:
        return [self.detect(f) for f in frames]

    def detect(self, frame_rgb: np.ndarray) -> Instances:
        canvas, r = letterbox(frame_rgb, self.size)  # RGB in, RGB canvas (pad 114 is grey either way)
        self.interpreter.set_tensor(self.input_index, (canvas[None].astype(np.float32) / 255.0))
        self.interpreter.invoke()
        pred = self.interpreter.get_tensor(self.pred_index)[0].T  # (anchors, 116)
        protos = self.interpreter.get_tensor(self.proto_index)[0]  # (160, 160, 32)
        return self._decode(pred, protos, r, frame_rgb.shape[:2])

    def _decode(self, pred: np.ndarray, protos: np.ndarray, r: float, frame_shape: tuple[int, int]) -> Instances:
        scores_w = pred[:, 4 + self.wanted]
        best = scores_w.argmax(1)
        score = scores_w[np.arange(len(best)), best]
        keep = score >= self.score_threshold
        if not keep.any():
            return Instances.empty()
        pred, score, cls = pred[keep], score[keep], self.wanted[best[keep]]
        cxcywh = pred[:, :4] * self.size  # normalised to the input canvas
        boxes_in = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], 1)
        boxes = clip_boxes(boxes_in / r, frame_shape)
        idx = class_aware_nms(boxes, score, cls, self.score_threshold, self.nms_iou)
        if len(idx) == 0:
            return Instances.empty()
        masks = self._masks(pred[idx, 4 + N_CLASSES:], protos, boxes_in[idx], r, frame_shape)
        categories = [self.class_to_category[int(c)] for c in cls[idx]]
        return Instances.from_arrays(boxes[idx], score[idx], categories, masks=masks)

    def _masks(self, coeffs: np.ndarray, protos: np.ndarray, boxes_in: np.ndarray, r: float, frame_shape: tuple[int, int]) -> np.ndarray:
        """Per instance: sigmoid(coefficients . prototypes), kept inside its box (as Ultralytics does), cut to the
        image part of the canvas and resized to the frame."""
        ph, pw = protos.shape[:2]
        logits = (coeffs @ protos.reshape(-1, N_COEFFS).T).reshape(-1, ph, pw)
        scale = ph / self.size
        ys, xs = np.arange(ph)[:, None] + 0.5, np.arange(pw)[None, :] + 0.5
        h, w = frame_shape
        valid_h, valid_w = max(1, int(round(h * r * scale))), max(1, int(round(w * r * scale)))
        out = np.zeros((len(coeffs), h, w), bool)
        for k, (x1, y1, x2, y2) in enumerate(boxes_in * scale):
            inside = (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
            m = np.where(inside, logits[k], -50.0)[:valid_h, :valid_w]  # outside the box: never in the mask
            up = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
            out[k] = up > np.log(self.mask_threshold / (1 - self.mask_threshold))
        return out
