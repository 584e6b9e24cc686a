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
from reid_ray.io import bridges_path, candidates_path, write_table_atomic
from reid_ray.models import registry
from reid_ray.models.dlib_faces import attach_faces_to_people
from reid_ray.records import Instances
from reid_ray.schemas import BRIDGE, CANDIDATE, table_from_rows
from reid_ray.stages.clip_pairs import sample_frames
from reid_ray.stages.quality import assess
from reid_ray.tracking.associate import AssociationParams, link_frames, split_on_appearance
from reid_ray.tracking.bridge import bridge_frames, find_bridges, is_bridged
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
            "pair_b_start_frame": clip_pair["b_start_frame"],  # side a may follow its tracks across the gap
            "pair_b_end_frame": clip_pair["b_end_frame"],
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
        self.embedders = registry.build_category_embedders(self.cfg)
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
            if clip["side"] == "a" and is_bridged(clip["clip_pair_id"], self.cfg.proposal.calibration.bridge_share):
                bridges = self.bridges(clip)  # written before the candidates, whose file marks the clip finished
                write_table_atomic(table_from_rows(bridges, BRIDGE), bridges_path(self.out_dir, clip["video_id"], clip["clip_pair_id"]))
            write_table_atomic(table_from_rows(rows, CANDIDATE), path)
            status.update(n_frames=n_frames, n_instances=len(rows), n_kept=sum(r["keep"] for r in rows))
        except VideoDecodeError as err:
            status.update(status="error", error_type="decode", message=str(err))
        except Exception as err:  # one bad clip must not end the job: it becomes an error row
            status.update(status="error", error_type=type(err).__name__, message=f"{err}\n{traceback.format_exc(limit=3)}")
        status["seconds"] = round(time.perf_counter() - t0, 3)
        return status

    def candidates(self, clip: dict) -> tuple[list[dict], int]:
        """Detect on frames ``track_step_s`` apart and link them into tracks (IoU is reliable at that spacing);
        embed, find faces and assess only the sampled frames among them."""
        start, end, fps = int(clip["start_frame"]), int(clip["end_frame"]), float(clip["fps"])
        step = max(1, int(round(self.cfg.sampling.track_step_s * fps)))
        sampled = set(sample_frames(start, end, self.cfg.sampling.frames_per_clip))
        tracked = sorted(set(range(start, end, step)) | sampled)
        with local_video(clip["uri"], self.cfg.sources) as local:
            frames = read_frames(local, tracked)
        detections = [self.detect(f) for f in frames]
        ids = link_frames([d.boxes for d in detections], [d.categories for d in detections], [None] * len(detections), self.assoc)
        described = [
            (frame_idx, *self.describe(frame, det.with_track_ids(tids)))
            for frame, frame_idx, det, tids in zip(frames, tracked, detections, ids)
            if frame_idx in sampled
        ]
        split = [d[1].track_ids for d in described]
        for threshold, categories in self.split_thresholds(described).items():
            # Each embedder's space has its own threshold; views of other categories are skipped (ids unchanged).
            usable = [d[3].keep & np.isin(d[1].categories, categories) for d in described]
            split = split_on_appearance(split, [d[2] for d in described], threshold, usable)
        rows = []
        for (frame_idx, inst, emb, quality), tids in zip(described, split):
            inst = inst.with_track_ids(tids)
            rles = inst.rles()
            for i in range(len(inst)):
                kp = inst.keypoints[i]
                has_kp = not np.isnan(kp).any()
                rows.append(
                    {
                        "candidate_id": f"{clip['clip_pair_id']}__{clip['side']}__{frame_idx:07d}_{i:03d}",
                        "clip_pair_id": clip["clip_pair_id"],
                        "side": clip["side"],
                        "track_id": int(inst.track_ids[i]),
                        "video_id": clip["video_id"],
                        "license": clip["license"],
                        "category": str(inst.categories[i]),
                        "score": float(inst.scores[i]),
                        "frame": int(frame_idx),
                        "t_s": frame_idx / fps,
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

    def bridges(self, clip: dict) -> list[dict]:
        """Tracks followed from clip A's start to clip B's end (``reid_ray.tracking.bridge``)."""
        fps = float(clip["fps"])
        step = max(1, int(round(self.cfg.sampling.track_step_s * fps)))
        n = self.cfg.sampling.frames_per_clip
        a_sampled = sample_frames(int(clip["start_frame"]), int(clip["end_frame"]), n)
        b_sampled = sample_frames(int(clip["pair_b_start_frame"]), int(clip["pair_b_end_frame"]), n)
        frames = bridge_frames(int(clip["start_frame"]), int(clip["pair_b_end_frame"]), step, a_sampled, b_sampled)
        with local_video(clip["uri"], self.cfg.sources) as local:
            detections = [self.detect(f) for f in read_frames(local, frames)]
        return find_bridges(frames, [d.boxes for d in detections], [d.categories for d in detections], a_sampled, b_sampled, self.assoc)

    def split_thresholds(self, described: list) -> dict[float, list[str]]:
        """Appearance-split threshold -> the categories it applies to (those seen in this clip)."""
        out: dict[float, list[str]] = {}
        for category in sorted({str(c) for d in described for c in d[1].categories}):
            own = self.cfg.embedder.for_category(category).split_similarity
            out.setdefault(self.cfg.proposal.split_similarity if own is None else own, []).append(category)
        return out

    def detect(self, frame: np.ndarray) -> Instances:
        """The segmenter's instances in source pixels."""
        small, scale = _downscale(frame, self.cfg.sampling.max_side_px)
        inst = self.segmenter.segment([small])[0]
        return _rescale(inst, 1.0 / scale, frame.shape[:2]) if scale != 1.0 and len(inst) else inst

    def describe(self, frame: np.ndarray, inst: Instances):
        """Add faces (keypoints for people, and face candidates with their own track ids), masks, embeddings
        and the quality assessment to one sampled frame's tracked instances."""
        if self.faces is not None:
            faces = self.faces.detect(frame)
            inst = attach_faces_to_people(inst, faces) if len(inst) else inst
            if self.cfg.faces.as_candidates and len(faces):
                # A face is tracked with the person it belongs to: same track id, offset so ids stay unique.
                owner = _face_owner(inst, faces)
                faces = faces.with_track_ids([FACE_TRACK_OFFSET + t if t >= 0 else -1 for t in owner])
                inst = Instances.concat([inst, faces])
        inst = inst.with_masks(frame.shape[:2], self.cfg.segmenter.box_mask)
        if inst.keypoints is None:
            inst = inst.with_keypoints(np.full((len(inst), 5, 2), np.nan, np.float32))
        if inst.track_ids is None:
            inst = inst.with_track_ids(-np.ones(len(inst), np.int64))
        emb = self.embedders.embed(frame, inst)
        return inst, emb, assess(frame, inst, emb, self.cfg.quality)


FACE_TRACK_OFFSET = 1_000_000


def _face_owner(people: Instances, faces: Instances) -> list[int]:
    """Track id of the person whose top half holds each face's centre, or -1."""
    owners = []
    for fx1, fy1, fx2, fy2 in faces.boxes:
        cx, cy = (fx1 + fx2) / 2, (fy1 + fy2) / 2
        owner = -1
        for (x1, y1, x2, y2), cat, tid in zip(people.boxes, people.categories, people.track_ids if people.track_ids is not None else [-1] * len(people)):
            if cat == "person" and x1 <= cx <= x2 and y1 <= cy <= y1 + (y2 - y1) / 2:
                owner = int(tid)
                break
        owners.append(owner)
    return owners


def _rescale(inst: Instances, factor: float, frame_shape: tuple[int, int]) -> Instances:
    import cv2
    from dataclasses import replace

    masks = None
    if inst.masks is not None:
        h, w = frame_shape
        masks = np.stack([cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool) for m in inst.masks])
    kps = None if inst.keypoints is None else inst.keypoints * factor
    return replace(inst, boxes=inst.boxes * factor, masks=masks, keypoints=kps)


