"""SAM3 (Segment Anything 3) as a ``Segmenter``: text-prompted detection, segmentation and tracking of a clip.

The frames of one ``segment``/``track`` call are one video session of transformers' ``Sam3VideoModel``:
one text prompt per configured prompt string, propagated over the frames, post-processed to boolean masks at the
frames' own size. The processor and model load once (this object lives in a Ray actor) from a hub id or a local
checkpoint directory; the session is thrown away at the end of each call.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from reid_ray.records import Instances


def resolve_dtype(dtype, device: str):
    """None or "auto": bfloat16 on CUDA, float32 elsewhere; a name ("float16") or a torch.dtype as given."""
    import torch

    if dtype is None or dtype == "auto":
        return torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}")
    return resolved


def boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """xyxy boxes enclosing each mask, right/bottom exclusive (``mask[y1:y2, x1:x2]`` covers it); zeros if empty."""
    n = len(masks)
    boxes = np.zeros((n, 4), np.float32)
    if n == 0:
        return boxes
    cols = masks.any(axis=1)  # (N, W)
    rows = masks.any(axis=2)  # (N, H)
    for i in range(n):
        xs = np.flatnonzero(cols[i])
        ys = np.flatnonzero(rows[i])
        if len(xs) and len(ys):
            boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


class Sam3Segmenter:
    """Text-prompted SAM3 video segmentation; ``categories`` maps a category name to its text prompts.

    ``track_ids`` are SAM3's object ids: unique within one call (one session) across all prompts and categories,
    stable across the frames of that call. A prompt string listed under two categories belongs to the first one.
    """

    real_masks = True

    def __init__(
        self,
        model: str,
        categories: dict[str, list[str]],
        score_threshold: float,
        device: str = "cpu",
        dtype=None,
        video_storage_device: str | None = None,
    ) -> None:
        import torch
        from transformers import Sam3VideoModel, Sam3VideoProcessor

        if not categories or not any(categories.values()):
            raise ValueError("Sam3Segmenter needs at least one category with one text prompt")
        self.model_name = model
        self.score_threshold = float(score_threshold)
        self.device = torch.device(device)
        self.dtype = resolve_dtype(dtype, str(self.device))
        # where the preprocessed frames of a session live; "cpu" saves accelerator memory on long clips
        self.video_storage_device = torch.device(video_storage_device) if video_storage_device else self.device
        self.prompt_to_category: dict[str, str] = {}
        for category, prompts in categories.items():
            for prompt in prompts:
                self.prompt_to_category.setdefault(prompt, category)
        self.prompts = list(self.prompt_to_category)
        self.categories = list(categories)

        self.processor = Sam3VideoProcessor.from_pretrained(model)
        self.model = Sam3VideoModel.from_pretrained(model, dtype=self.dtype).to(self.device).eval()

    def segment(self, frames: Sequence[np.ndarray]) -> list[Instances]:
        return self._run(frames)

    def track(self, frames: Sequence[np.ndarray]) -> list[Instances]:
        """Same as ``segment``; named for callers that rely on ``track_ids`` being stable over the frames."""
        return self._run(frames)

    def _run(self, frames: Sequence[np.ndarray]) -> list[Instances]:
        import torch

        frames = [np.asarray(f) for f in frames]
        if not frames:
            return []
        shape = frames[0].shape
        if len(shape) != 3 or shape[2] != 3:
            raise ValueError(f"frames must be RGB H x W x 3, got {shape}")
        if any(f.shape != shape for f in frames):
            raise ValueError("all frames of one SAM3 session must have the same size")
        height, width = shape[:2]

        results: list[Instances | None] = [None] * len(frames)
        with torch.inference_mode():
            session = self.processor.init_video_session(
                video=np.stack(frames).astype(np.uint8, copy=False),
                inference_device=self.device,
                video_storage_device=self.video_storage_device,
                dtype=self.dtype,
            )
            session = self.processor.add_text_prompt(session, self.prompts)
            for out in self.model.propagate_in_video_iterator(inference_session=session):
                post = self.processor.postprocess_outputs(session, out)
                results[out.frame_idx] = self._to_instances(session, post, (height, width))
            del session
        return [r if r is not None else self._empty((height, width)) for r in results]

    def _to_instances(self, session, post: dict, frame_shape: tuple[int, int]) -> Instances:
        obj_ids = post["object_ids"].cpu().numpy().astype(np.int64)
        if len(obj_ids) == 0:
            return self._empty(frame_shape)
        scores = post["scores"].float().cpu().numpy().astype(np.float32)
        masks = post["masks"].cpu().numpy().astype(bool)
        prompts = np.array([session.prompts[session.obj_id_to_prompt_id[int(o)]] for o in obj_ids], dtype=object)
        # keep what clears the threshold and still has pixels after SAM3's per-prompt non-overlap step
        keep = (scores >= self.score_threshold) & masks.reshape(len(masks), -1).any(1)
        obj_ids, scores, masks, prompts = obj_ids[keep], scores[keep], masks[keep], prompts[keep]
        if len(obj_ids) == 0:
            return self._empty(frame_shape)
        categories = np.array([self.prompt_to_category[p] for p in prompts], dtype=object)
        return Instances(
            boxes=boxes_from_masks(masks),
            scores=scores,
            categories=categories,
            masks=masks,
            track_ids=obj_ids,
            extra={"prompt": prompts},
        )

    @staticmethod
    def _empty(frame_shape: tuple[int, int]) -> Instances:
        h, w = frame_shape
        return Instances(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros(0, np.float32),
            categories=np.zeros(0, object),
            masks=np.zeros((0, h, w), bool),
            track_ids=np.zeros(0, np.int64),
            extra={"prompt": np.zeros(0, object)},
        )
