"""Stage 2: one clip per row. Decode the sampled frames inside the actor, segment candidates per category,
find faces with 5 keypoints, embed the patches inside each mask, assess quality, link instances into
tracks within the clip, and write the clip's candidates (Parquet) under ``candidates/``.

A plain callable: Ray Data runs it as an actor pool (``compute=ActorPoolStrategy``); a test calls it directly.
"""
from __future__ import annotations

import time
import traceback
from pathlib import Path

import numpy as np

from reid_ray.config import PairsJobConfig
from reid_ray.io import candidates_path, write_table_atomic
from reid_ray.models import registry
from reid_ray.models.dlib_faces import FACE_CATEGORY, attach_faces_to_people
from reid_ray.records import Instances
from reid_ray.schemas import CANDIDATE, table_from_rows
from reid_ray.stages.clip_pairs import sample_frames
from reid_ray.stages.quality import assess
from reid_ray.tracking.associate import AssociationParams, link_frames
from reid_ray.video.decode import VideoDecodeError, local_video, read_frames

STATUS_FIELDS = ("clip_pair_id", "side", "video_id", "uri", "status", "n_frames", "n_instances", "n_kept", "error_type", "message", "seconds")


def clip_rows(clip_pair: dict) -> list[dict]:
    """A clip pair row -> its two clip rows (the unit of work of the segment stage)."""
    return [
        {
            "clip_pair_id": clip_pair["clip_pair_id"],
            "side": side,
            "video_id": clip_pair["video_id"],
            "uri": clip_pair["uri"],
            "license": clip_pair["license"],
            "fps": clip_pair["fps"],
            "start_frame": clip_pair[f"{side}_start_frame"],
            "end_frame": clip_pair[f"{side}_end_frame"],
        }
        for side in ("a", "b")
    ]


def _downscale(frame: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    import cv2

    h, w = frame.shape[:2]
    s = min(1.0, max_side / max(h, w))
    if s >= 1.0:
        return frame, 1.0
    return cv2.resize(frame, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_AREA), s


class ClipSegmentStage:
    """Callable class for ``map_batches``: loads its models once per actor."""

    def __init__(self, cfg_json: str, out_dir: str) -> None:
        self.cfg = PairsJobConfig.model_validate_json(cfg_json)
        self.out_dir = Path(out_dir)
        self.segmenter = registry.build_segmenter(self.cfg)
        self.faces = registry.build_face_detector(self.cfg)
        self.embedder = registry.build_embedder(self.cfg)
        self.head = registry.build_head(self.cfg)
        p = self.cfg.proposal
        self.assoc = AssociationParams(min_iou=p.track_iou)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        n = len(batch["clip_pair_id"])
        rows = [{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in batch.items()} for i in range(n)]
        statuses = [self.process(r) for r in rows]
        return {k: [s[k] for s in statuses] for k in STATUS_FIELDS}

    def process(self, clip: dict) -> dict:
        t0 = time.perf_counter()
        status = {k: clip.get(k, "") for k in ("clip_pair_id", "side", "video_id", "uri")}
        status.update(status="ok", n_frames=0, n_instances=0, n_kept=0, error_type="", message="", seconds=0.0)
        path = candidates_path(self.out_dir, clip["video_id"], clip["clip_pair_id"], clip["side"])
        if path.exists():  # finished by an earlier run: idempotent skip
            status["status"] = "skipped"
            return status
        try:
            rows, n_frames = self.candidates(clip)
            write_table_atomic(table_from_rows(rows, CANDIDATE), path)
            status.update(n_frames=n_frames, n_instances=len(rows), n_kept=sum(r["keep"] for r in rows))
        except VideoDecodeError as err:
            status.update(status="error", error_type="decode", message=str(err))
        except Exception as err:  # one bad clip must not end the job: it becomes an error row
            status.update(status="error", error_type=type(err).__name__, message=f"{err}\n{traceback.format_exc(limit=3)}")
        status["seconds"] = round(time.perf_counter() - t0, 3)
        return status

    def candidates(self, clip: dict) -> tuple[list[dict], int]:
        indices = sample_frames(int(clip["start_frame"]), int(clip["end_frame"]), self.cfg.sampling.frames_per_clip)
        with local_video(clip["uri"], self.cfg.sources) as local:
            frames = read_frames(local, indices)
        per_frame = [self.frame_instances(f) for f in frames]
        ids = link_frames(
            [inst.boxes for inst, _, _ in per_frame],
            [inst.categories for inst, _, _ in per_frame],
            [emb for _, emb, _ in per_frame],
            self.assoc,
        )
        rows = []
        for (inst, emb, quality), frame_idx, tids in zip(per_frame, indices, ids):
            rles = inst.rles()
            for i in range(len(inst)):
                kp = inst.keypoints[i] if inst.keypoints is not None else None
                has_kp = kp is not None and not np.isnan(kp).any()
                rows.append(
                    {
                        "candidate_id": f"{clip['clip_pair_id']}__{clip['side']}__{frame_idx:07d}_{i:03d}",
                        "clip_pair_id": clip["clip_pair_id"],
                        "side": clip["side"],
                        "track_id": int(tids[i]),
                        "video_id": clip["video_id"],
                        "license": clip["license"],
                        "category": str(inst.categories[i]),
                        "score": float(inst.scores[i]),
                        "frame": int(frame_idx),
                        "t_s": frame_idx / float(clip["fps"]),
                        "bbox": [float(v) for v in inst.boxes[i]],
                        "mask_rle": rles[i]["counts"],
                        "mask_height": rles[i]["size"][0],
                        "mask_width": rles[i]["size"][1],
                        "keypoints": kp.reshape(-1).tolist() if has_kp else [],
                        "sharpness": float(quality.sharpness[i]),
                        "max_overlap": float(quality.max_overlap[i]),
                        "max_similarity_in_frame": float(quality.max_similarity[i]),
                        "keep": quality.reasons[i] == "",
                        "reject_reason": quality.reasons[i],
                        "embedding": emb[i].tolist(),
                    }
                )
        return rows, len(frames)

    def frame_instances(self, frame: np.ndarray):
        """Instances of one frame in source pixels, with masks, face keypoints, embeddings and quality."""
        small, scale = _downscale(frame, self.cfg.sampling.max_side_px)
        inst = self.segmenter.segment([small])[0]
        if self.faces is not None:
            faces = self.faces.detect(small)
            inst = attach_faces_to_people(inst, faces) if len(inst) else inst
            if self.cfg.faces.as_candidates and len(faces):
                inst = Instances.concat([inst, faces])
        if scale != 1.0 and len(inst):
            inst = _rescale(inst, 1.0 / scale, frame.shape[:2])
        inst = inst.with_masks(frame.shape[:2])
        if inst.keypoints is None:
            inst = inst.with_keypoints(np.full((len(inst), 5, 2), np.nan, np.float32))
        emb = self.head.pool(self.embedder.patch_sets(frame, inst)) if len(inst) else np.zeros((0, self.embedder.dim), np.float32)
        return inst, emb, assess(frame, inst, emb, self.cfg.quality)


def _rescale(inst: Instances, factor: float, frame_shape: tuple[int, int]) -> Instances:
    import cv2
    from dataclasses import replace

    masks = None
    if inst.masks is not None:
        h, w = frame_shape
        masks = np.stack([cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool) for m in inst.masks])
    kps = None if inst.keypoints is None else inst.keypoints * factor
    return replace(inst, boxes=inst.boxes * factor, masks=masks, keypoints=kps)


__all__ = ["ClipSegmentStage", "clip_rows", "FACE_CATEGORY"]
