"""Candidates of one clip pair, from the pair job's models: for each clip, segment candidates per category, find
faces with 5 keypoints, embed the patches inside each mask, assess quality, and link instances into tracks within
the clip (a video segmenter, SAM3, tracks them itself in one session per clip); for a bridged clip pair, tracks
followed across the gap. ``stages/segment.py`` is the actor that runs this and writes what it finds.

The models see frames at most ``sampling.max_side_px`` on a side (pixel thresholds of the quality checks apply
there); the rows hold boxes and keypoints in source pixels, masks at model size.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np

from reid_ray.config import PairsJobConfig
from reid_ray.models import registry
from reid_ray.models.dlib_faces import attach_faces_to_people
from reid_ray.pairs.clip_pairs import sample_frames
from reid_ray.pairs.quality import assess
from reid_ray.records import Instances
from reid_ray.tracking.associate import AssociationParams, link_frames, split_on_appearance
from reid_ray.tracking.bridge import find_bridges

FACE_TRACK_OFFSET = 1_000_000


def clip_rows(clip_pair: dict) -> list[dict]:
    """A clip pair row -> its two clips, each segmented and tracked on its own."""
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


class CandidateFinder:
    """The pair job's models (segmenter, face detector, one embedder per category), each loaded on first use: a
    rerun whose clip pairs are all finished loads none."""

    def __init__(self, cfg: PairsJobConfig) -> None:
        self.cfg = cfg
        self.assoc = AssociationParams(min_iou=cfg.proposal.track_iou)

    @cached_property
    def segmenter(self):
        return registry.build_segmenter(self.cfg)

    @property
    def tracks_in_video(self) -> bool:
        """The segmenter follows objects through a video session itself (SAM3): its ids are a clip's tracks."""
        return hasattr(self.segmenter, "track")

    @cached_property
    def faces(self):
        return registry.build_face_detector(self.cfg)

    @cached_property
    def embedders(self):
        return registry.build_category_embedders(self.cfg)

    def clip_candidates(self, clip: dict, frames: dict[int, np.ndarray], scale: float = 1.0, detections: dict | None = None) -> tuple[list[dict], int]:
        """Detect on frames ``track_step_s`` apart and link them into tracks (IoU is reliable at that spacing);
        embed, find faces and assess only the sampled frames among them. ``frames``: index -> frame at model
        size, ``scale`` model size / source size."""
        start, end, fps = int(clip["start_frame"]), int(clip["end_frame"]), float(clip["fps"])
        step = max(1, int(round(self.cfg.sampling.track_step_s * fps)))
        sampled = set(sample_frames(start, end, self.cfg.sampling.frames_per_clip))
        tracked = sorted(set(range(start, end, step)) | sampled)
        if self.tracks_in_video:  # SAM3: one video session over the clip's frames, its object ids are the tracks
            dets = self.segmenter.track([frames[i] for i in tracked])
            ids = [d.track_ids for d in dets]
        else:
            detections = {} if detections is None else detections
            for i in tracked:
                if i not in detections:
                    detections[i] = self.detect(frames[i])
            dets = [detections[i] for i in tracked]
            ids = link_frames([d.boxes for d in dets], [d.categories for d in dets], [None] * len(dets), self.assoc)
        described = [
            (frame_idx, *self.describe(frames[frame_idx], det.with_track_ids(tids)))
            for frame_idx, det, tids in zip(tracked, dets, ids)
            if frame_idx in sampled
        ]
        split = [d[1].track_ids for d in described]
        # A video segmenter's tracks are kept whole (the seed trusts SAM3's tracking); IoU-linked ones are cut where
        # consecutive views stop looking alike (two people swapped under IoU).
        thresholds = {} if self.tracks_in_video else self.split_thresholds(described)
        for threshold, categories in thresholds.items():
            # Each embedder's space has its own threshold; views of other categories are skipped (ids unchanged).
            usable = [d[3].keep & np.isin(d[1].categories, categories) for d in described]
            split = split_on_appearance(split, [d[2] for d in described], threshold, usable)
        to_source = 1.0 / scale
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
                        "bbox": [float(v) * to_source for v in inst.boxes[i]],
                        "mask_rle": rles[i]["counts"],
                        "mask_height": rles[i]["size"][0],
                        "mask_width": rles[i]["size"][1],
                        "keypoints": (kp.reshape(-1) * to_source).tolist() if has_kp else [],
                        "sharpness": float(quality.sharpness[i]),
                        "max_overlap": float(quality.max_overlap[i]),
                        "max_similarity_in_frame": float(quality.max_similarity[i]),
                        "keep": quality.reasons[i] == "",
                        "reject_reason": quality.reasons[i],
                        "embedding": emb[i].tolist(),
                    }
                )
        return rows, len(tracked)

    def bridges(self, clip_pair: dict, wanted: dict[str, list[int]], frames: dict[int, np.ndarray], detections: dict, scale: float) -> list[dict]:
        """Tracks followed from clip A's start to clip B's end (``reid_ray.tracking.bridge``), boxes in source pixels."""
        n = self.cfg.sampling.frames_per_clip
        a_sampled = sample_frames(int(clip_pair["a_start_frame"]), int(clip_pair["a_end_frame"]), n)
        b_sampled = sample_frames(int(clip_pair["b_start_frame"]), int(clip_pair["b_end_frame"]), n)
        if self.tracks_in_video:  # one session over the gap's frames rather than one per frame
            dets = self.segmenter.track([frames[i] for i in wanted["bridge"]])
        else:
            for i in wanted["bridge"]:
                if i not in detections:
                    detections[i] = self.detect(frames[i])
            dets = [detections[i] for i in wanted["bridge"]]
        found = find_bridges(wanted["bridge"], [d.boxes for d in dets], [d.categories for d in dets], a_sampled, b_sampled, self.assoc)
        return [{**b, "bbox": [float(v) / scale for v in b["bbox"]]} for b in found]

    def split_thresholds(self, described: list) -> dict[float, list[str]]:
        """Appearance-split threshold -> the categories it applies to (those seen in this clip)."""
        out: dict[float, list[str]] = {}
        for category in sorted({str(c) for d in described for c in d[1].categories}):
            own = self.cfg.embedder.for_category(category).split_similarity
            out.setdefault(self.cfg.proposal.split_similarity if own is None else own, []).append(category)
        return out

    def detect(self, frame: np.ndarray) -> Instances:
        """The segmenter's instances on a frame at model size."""
        return self.segmenter.segment([frame])[0]

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
