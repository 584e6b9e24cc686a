"""Stage 2 (the model stage): one clip pair per row, its frames decoded by ``stages/decode.py``. For each clip,
segment candidates per category, find faces with 5 keypoints, embed the patches inside each mask, assess
quality, and link instances into tracks within the clip (a video segmenter, SAM3, tracks them itself in one
session per clip); write both clips' candidates as one Parquet file
(``candidates/<video>/<clip pair>.parquet``); for a bridged clip pair, follow tracks across the gap (``bridges/``).
Last, from the same rows in memory: the clip pair's proposed pairs before routing (``proposals/``), and its certain
pairs and proposal distances for the run's calibration (``calibration/<video>/<clip pair>.parquet``): written last,
its presence marks the clip pair finished.

The models see frames at most ``sampling.max_side_px`` on a side (pixel thresholds of the quality checks apply
there); records hold boxes and keypoints in source pixels, masks at model size.

A plain callable: Ray Data runs it as an actor pool (``compute=ActorPoolStrategy``); a test calls it directly.
"""
from __future__ import annotations

import time
import traceback
from functools import cached_property

import numpy as np

from reid_ray.config import PairsJobConfig
from reid_ray.io import (
    bridges_path, calibration_samples_path, candidates_path, clip_pair_errors_path, proposals_path, write_or_remove,
    write_table_atomic,
)
from reid_ray.models import registry
from reid_ray.models.dlib_faces import attach_faces_to_people
from reid_ray.pairs.clip_pairs import sample_frames
from reid_ray.pairs.frames import frames_to_decode, unpack_frames
from reid_ray.pairs.proposal import build_tracks, certain_pairs, matches, proposal_rows
from reid_ray.pairs.quality import assess
from reid_ray.pipeline import RowStage, StageClock
from reid_ray.storage import out_root
from reid_ray.records import Instances
from reid_ray.schemas import BRIDGE, CALIBRATION_SAMPLE, CANDIDATE, CLIP_PAIR_FIELDS, ERROR, PROPOSAL, error_row, table_from_rows
from reid_ray.tracking.associate import AssociationParams, link_frames, split_on_appearance
from reid_ray.tracking.bridge import find_bridges

STATUS_FIELDS = ("clip_pair_id", "video_id", "uri", "status", "n_frames", "n_instances", "n_kept", "n_certain_pairs", "error_type",
                 "message", "seconds")
SEGMENTED_FIELDS = CLIP_PAIR_FIELDS + STATUS_FIELDS[3:]


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


class ClipPairSegmentStage(RowStage):
    """One decoded clip pair in, the clip pair with its status out; loads its models once per actor, when a clip
    pair first needs them."""

    fields = SEGMENTED_FIELDS

    def __init__(self, cfg_json: str, out_dir: str) -> None:
        self.cfg = PairsJobConfig.model_validate_json(cfg_json)
        self.out_dir = out_root(out_dir, self.cfg.sources.s3_endpoint_url)
        p = self.cfg.proposal
        self.assoc = AssociationParams(min_iou=p.track_iou)
        self.clock = StageClock("segment", self.out_dir)

    # Models load on first use: a rerun whose clip pairs are all finished starts its actors but loads no model.
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

    def process(self, row: dict) -> dict:
        """The clip pair's fields (the frames left behind) and its status."""
        return {**{k: row[k] for k in CLIP_PAIR_FIELDS}, **self.segment(row)}

    def segment(self, row: dict) -> dict:
        """Status of one decoded clip pair; its candidates (and bridges) written, or its error recorded."""
        t0 = time.perf_counter()
        status = {k: row.get(k, "") for k in ("clip_pair_id", "video_id", "uri")}
        status.update(status="ok", n_frames=0, n_instances=0, n_kept=0, n_certain_pairs=0, error_type="", message="", seconds=0.0)
        video_id, cp_id = row["video_id"], row["clip_pair_id"]
        err_path = clip_pair_errors_path(self.out_dir, "segment", video_id, cp_id)
        finished = calibration_samples_path(self.out_dir, video_id, cp_id)
        if finished.exists():  # finished by an earlier run: idempotent skip
            status["status"] = "skipped"
            return status
        try:
            if row["error_type"]:
                raise ClipPairInputError(row["error_type"], row["message"])
            frames = unpack_frames(row)
            scale = float(row["scale"])
            wanted = frames_to_decode(row, self.cfg)
            detections = {}  # one detection per frame, shared by a clip's tracking and the bridge
            bridges = None
            if "bridge" in wanted:
                table = table_from_rows(self.bridges(row, wanted, frames, detections, scale), BRIDGE)
                write_table_atomic(table, bridges_path(self.out_dir, video_id, cp_id))
                bridges = table.to_pylist()  # as written, like the candidates below
            rows = []
            for clip in clip_rows(row):
                clip_candidates, n_frames = self.candidates(clip, frames, scale, detections)
                rows += clip_candidates
                status["n_frames"] += n_frames
            both = table_from_rows(rows, CANDIDATE)
            write_table_atomic(both, candidates_path(self.out_dir, video_id, cp_id))
            # From the table as written (float32), so the samples equal what routing later reads from the file.
            tracks = build_tracks(both, self.cfg.proposal)
            matched = list(matches(tracks, self.cfg.proposal))  # track distances and matches, computed once for both
            proposals = proposal_rows(row, tracks, self.cfg.proposal, matched)  # routed once the calibration is known
            write_table_atomic(table_from_rows(proposals, PROPOSAL), proposals_path(self.out_dir, video_id, cp_id))
            samples = [{"video_id": video_id, "clip_pair_id": cp_id, **s}
                       for s in certain_pairs(tracks, self.cfg.proposal, bridges, matched)]
            write_table_atomic(table_from_rows(samples, CALIBRATION_SAMPLE), finished)  # last: the clip pair is finished
            status.update(n_instances=both.num_rows, n_kept=sum(both.column("keep").to_pylist()),
                          n_certain_pairs=sum(s["kind"] not in ("proposal", "static") for s in samples))
        except ClipPairInputError as err:
            status.update(status="error", error_type=err.error_type, message=err.message)
        except Exception as err:  # one bad clip pair must not end the job: it becomes an error record
            status.update(status="error", error_type=type(err).__name__, message=f"{err}\n{traceback.format_exc(limit=3)}")
        failed = [error_row("segment", status["message"], video_id=video_id, uri=row["uri"], item_id=cp_id, error_type=status["error_type"])]
        write_or_remove(failed if status["status"] == "error" else [], ERROR, err_path)
        status["seconds"] = round(time.perf_counter() - t0, 3)
        return status

    def candidates(self, clip: dict, frames: dict[int, np.ndarray], scale: float = 1.0, detections: dict | None = None) -> tuple[list[dict], int]:
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


class ClipPairInputError(Exception):
    """The decode stage could not give this clip pair's frames."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type, self.message = error_type, message


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
