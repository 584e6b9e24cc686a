"""The per-video actor of the re-identification job: one row per video, decoded inside the actor.

shots (TransNetV2) -> per-frame person instances (segmenter, or a public-detections file) -> tracklets within
shots -> per-frame patch embeddings -> tracklet distances (``distance``) -> clustering that never joins
tracklets sharing a frame -> identities, written under ``<out>/<safe_name(video_id)>/`` with ``report.json`` last
(``reid_ray.names``: the id itself for plain ids; records keep the exact id).

Frame-to-frame association always compares mean-pooled patch features: its similarity gate is calibrated on the
backbone, and a trained head (``embedder.head``) is for telling people apart across tracklets, so swapping the head
changes which tracklets join, never the tracklets themselves.

With a video segmenter (SAM3, ``segmenter.backend: sam3``) the seed's way: shots first, then one SAM3 video session
per shot (shots longer than ``shots.max_shot_frames`` in pieces), its object ids the raw tracks (cut where an object
leaves the frame), and each view's patch embeddings taken inside SAM3's own mask.

A plain callable: Ray Data runs it as an actor pool; a test may call ``process`` directly.
"""
from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa

from reid_ray.io import errors_path, write_json_atomic, write_table_atomic
from reid_ray.models import registry
from reid_ray.models.heads import MeanPoolHead
from reid_ray.models.transnet import INPUT_HW, TransNetShotDetector
from reid_ray.names import safe_name
from reid_ray.pipeline import columns_of, rows_of
from reid_ray.records import Instances, clip_boxes
from reid_ray.config import ReidJobConfig
from reid_ray.schemas import BBOX, ERROR, error_row, table_from_rows
from reid_ray.tracking.associate import AssociationParams
from reid_ray.tracking.clustering import cluster_hierarchy, cluster_with_anchors, temporal_overlap
from reid_ray.tracking.distances import distance_matrix, sharded_distance_matrix
from reid_ray.tracking.exports import VideoTracks, write_track_exports
from reid_ray.tracking.interpolate import fill_gaps, shot_index
from reid_ray.mot_format import (
    DetectionsFormatError,
    read_public_detections,
)
from reid_ray.tracking.tracklets import Tracklet, build_tracklets, split_segments
from reid_ray.video.decode import VideoDecodeError, iter_frames, local_video, probe

STAGE = "reid_video"
SUMMARY_FIELDS = ("video_id", "status", "n_frames", "n_shots", "n_tracklets", "n_identities", "error_type", "message", "seconds")

TRACKLET = pa.schema(
    [
        ("video_id", pa.string()),
        ("shot_id", pa.int64()),
        ("tracklet_id", pa.int64()),
        ("identity", pa.int64()),  # 1-based, as in identities.txt
        ("frame", pa.int64()),  # 0-based
        ("bbox", BBOX),  # x1, y1, x2, y2, 0-based source pixels
        ("score", pa.float32()),
        ("embedding", pa.list_(pa.float32())),
    ]
)


def video_dir(out: Path, video_id: str) -> Path:
    return Path(out) / safe_name(video_id)


def video_errors_path(out: Path, video_id: str) -> Path:
    return errors_path(out, safe_name(video_id))


def is_finished(out: Path, video_id: str) -> bool:
    return (video_dir(out, video_id) / "report.json").exists()


PATCH_MAPS = "patch_maps.png"
PATCH_MAP_IDENTITIES = 4
# Views in the embedding figure: its cost grows with the points (UMAP), a feature film has millions of views.
MAX_PLOTTED_VIEWS = 2000


def plot_sample(lengths: Sequence[int], limit: int) -> list[np.ndarray]:
    """Per tracklet, the views to plot: all when the video has at most ``limit``; else evenly spaced views in
    proportion to its length, at least one each (every tracklet stays in the figure)."""
    total = sum(lengths)
    if total <= limit:
        return [np.arange(n) for n in lengths]
    share = max(limit - len(lengths), 0) / total
    return [np.unique(np.linspace(0, n - 1, max(1, int(n * share))).round().astype(np.int64)) for n in lengths]


class ReidVideoStage:
    """Callable class for ``map_batches``: models load once per actor."""

    def __init__(self, cfg_json: str, out_dir: str, detections_dir: str | None = None) -> None:
        self.cfg = ReidJobConfig.model_validate_json(cfg_json)
        self.out = Path(out_dir)
        self.detections_dir = Path(detections_dir) if detections_dir else None
        self.segmenter = None if self.detections_dir else registry.build_segmenter(self._segmenter_config())
        self.embedder = registry.build_embedder(self.cfg)
        self.head = registry.build_head(self.cfg)
        self.association_head = MeanPoolHead()
        self.shot_detector = TransNetShotDetector(threshold=self.cfg.shots.threshold)

    def _segmenter_config(self) -> ReidJobConfig:
        """The profile, with the segmenter's score floor lowered to the tracker's second-association threshold."""
        low = self.cfg.tracking.low_score_threshold
        if low is None or low >= self.cfg.segmenter.score_threshold:
            return self.cfg
        return self.cfg.model_copy(update={"segmenter": self.cfg.segmenter.model_copy(update={"score_threshold": low})})

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        summaries = [self.process(r) for r in rows_of(batch)]
        return columns_of(summaries, SUMMARY_FIELDS)

    # ------------------------------------------------------------------------------------------ driver

    def process(self, video: dict) -> dict:
        t0 = time.perf_counter()
        vid = video["video_id"]
        summary = {k: 0 for k in SUMMARY_FIELDS} | {"video_id": vid, "status": "ok", "error_type": "", "message": "", "seconds": 0.0}
        if is_finished(self.out, vid):
            summary["status"] = "skipped"
            return summary
        err_path = video_errors_path(self.out, vid)
        try:
            report = self.run(video)
            err_path.unlink(missing_ok=True)  # an earlier failed attempt's record no longer holds
            summary.update({k: report["counts"][k] for k in ("n_frames", "n_shots", "n_tracklets", "n_identities")})
        except Exception as err:  # noqa: BLE001  (one bad video must not end the job: it becomes an error row)
            kind = "decode" if isinstance(err, VideoDecodeError) else "detections" if isinstance(err, DetectionsFormatError) else type(err).__name__
            msg = str(err) if kind in ("decode", "detections") else f"{err}\n{traceback.format_exc(limit=4)}"
            write_table_atomic(table_from_rows([error_row(STAGE, msg, video_id=vid, uri=video.get("uri", ""), error_type=kind)], ERROR), err_path)
            summary.update(status="error", error_type=kind, message=msg)
        summary["seconds"] = round(time.perf_counter() - t0, 3)
        return summary

    def run(self, video: dict) -> dict:
        t0 = time.perf_counter()
        vid, timings = video["video_id"], {}
        out = video_dir(self.out, vid)
        out.mkdir(parents=True, exist_ok=True)
        with local_video(video["uri"], self.cfg.sources) as local:
            info = probe(local)
            given = None
            if self.detections_dir is not None:  # read before decoding: a bad file fails fast
                given = read_public_detections(self.detections_dir / f"{safe_name(vid)}.txt", info.n_frames)
            shots, detections, embeddings, tracklets = self.track(local, given, timings)
            embs = [np.stack([embeddings[f][i] for f, i in zip(tk.frames, tk.det_index)]) for tk in tracklets]
            t = time.perf_counter()
            # Compared on clean views only (whole, unobstructed): occluded views dominate a Chamfer-p distance.
            dist, sharded = self.distances([e[tk.clean] if tk.clean.any() else e for e, tk in zip(embs, tracklets)])
            timings["distances_s"] = time.perf_counter() - t
            cannot_link = temporal_overlap([tk.frames for tk in tracklets])
            labels, z, in_tree = self.cluster(tracklets, dist, cannot_link)
            identity = labels + 1  # MOTChallenge ids start at 1
            filled = self.filled(tracklets, identity, shots, info.n_frames) if given is None else []
            t = time.perf_counter()
            self.write_tables(out, vid, tracklets, identity, embs)
            exports = write_track_exports(out, self.cfg.outputs.track_formats,
                                          VideoTracks.from_tracklets(vid, info, tracklets, identity, filled, detections))
            figures = {}
            if self.cfg.outputs.figures:
                figures = self.write_figures(out, vid, tracklets, identity, embs, z, in_tree)
                if self.write_patch_maps(out, local, tracklets, identity, detections, vid):
                    figures["patch_maps"] = PATCH_MAPS
            timings["figures_s"] = time.perf_counter() - t
            t = time.perf_counter()
            if self.cfg.outputs.videos:
                self.write_videos(out, local, info.fps, tracklets, identity, filled, detections)
            timings["videos_s"] = time.perf_counter() - t
        report = {
            "video_id": vid,
            "uri": video["uri"],
            "license": video.get("license", ""),
            "fps": info.fps,
            "detections": "public" if given is not None else self.cfg.segmenter.backend,
            "shots": [list(s) for s in shots],
            "counts": {
                "n_frames": info.n_frames,
                "n_shots": len(shots),
                "n_detections": int(sum(len(d) for d in detections)),
                "n_tracklets": len(tracklets),
                "n_tracklet_frames": int(sum(len(tk) for tk in tracklets)),
                "n_interpolated_boxes": int(sum(len(f) for _, f, _ in filled)),
                # boxes under segmenter.score_threshold that continued a track (tracking.low_score_threshold)
                "n_low_score_boxes": 0 if given is not None else int(sum((tk.scores < self.cfg.segmenter.score_threshold).sum() for tk in tracklets)),
                "n_cannot_link_pairs": int(np.triu(cannot_link, 1).sum()),
                "n_identities": len(np.unique(identity)),
            },
            "clusters": {str(int(i)): [int(tk.tracklet_id) for tk, l in zip(tracklets, identity) if l == i] for i in np.unique(identity)},
            "distance": {**self.cfg.distance.model_dump(), "sharded": sharded},
            "clustering": self.cfg.clustering.model_dump(),
            "figures": figures,
            "track_exports": exports,
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
            # what the pictures and videos cost, as a share of the video's run so far
            "outputs_share": round((timings["figures_s"] + timings["videos_s"]) / max(time.perf_counter() - t0, 1e-9), 3),
        }
        write_json_atomic(report, out / "report.json")  # last: its presence marks the video finished
        return report

    # ------------------------------------------------------------------------------------------ steps

    @property
    def tracks_in_video(self) -> bool:
        """The segmenter follows objects through a video session itself (SAM3): its ids are the raw tracks."""
        return self.segmenter is not None and hasattr(self.segmenter, "track")

    def track(self, local: str, given: list[Instances] | None, timings: dict | None = None):
        """Shots, per-frame person instances with one embedding each, and the tracklets built from them."""
        timings = {} if timings is None else timings
        if given is None and self.tracks_in_video:
            return self.track_with_video_segmenter(local, timings)
        t = time.perf_counter()
        small, detections, embeddings, association, shape = self.scan(local, given)
        timings["scan_s"] = time.perf_counter() - t
        t = time.perf_counter()
        shots = self.shot_detector.shots_from_frames(small) if len(small) else []
        timings["shots_s"] = time.perf_counter() - t
        tr = self.cfg.tracking
        secondary = None
        if given is None and tr.low_score_threshold is not None:
            secondary = [d.scores < self.cfg.segmenter.score_threshold for d in detections]
        tracklets = build_tracklets(
            detections, shots, shape,
            AssociationParams(min_iou=tr.min_iou, min_similarity=tr.min_similarity, appearance_weight=tr.appearance_weight,
                              appearance_momentum=tr.appearance_momentum),
            tr.max_missed, tr.min_tracklet_frames, self.cfg.shots.max_shot_frames, tr.border_px,
            association if tr.appearance_weight > 0 or tr.split_similarity is not None else None,
            tr.split_similarity, tr.max_overlap, tr.split_at_occlusions, tr.occluded_by, secondary,
            tr.max_height_jump if given is None else None,
        )
        return shots, detections, embeddings, tracklets

    def scan(self, path: str, given: list[Instances] | None):
        """One decoding pass: TransNetV2 inputs, person instances, and per instance per frame one identity embedding
        (the head's) and one association embedding (mean pooling; the same array when the head is mean pooling)."""
        small, detections, embeddings, association, shape = [], [], [], [], (0, 0)
        for idx, frame in iter_frames(path):
            shape = frame.shape[:2]
            small.append(cv2.resize(frame, INPUT_HW[::-1], interpolation=cv2.INTER_AREA))
            inst = given[idx] if given is not None else self.detect(frame)
            inst = inst.select(np.flatnonzero(inst.categories == "person")) if len(inst) else inst
            if len(inst):  # boxes past the edge (detector or file) would make empty crops
                inst = replace(inst, boxes=clip_boxes(inst.boxes, shape))
                inst = inst.select(np.flatnonzero((inst.boxes[:, 2] - inst.boxes[:, 0] >= 2) & (inst.boxes[:, 3] - inst.boxes[:, 1] >= 2)))
            # Kept for the whole video: masks scaled up from a downscaled frame would be a source-size frame of
            # booleans per person per frame, so they serve the embedding below only (the figures draw box masks).
            downscaled = inst.masks is not None and max(shape) > self.cfg.tracking.max_side_px
            detections.append(replace(inst, masks=None) if downscaled else inst)
            if len(inst):
                sets = self.embedder.patch_sets(frame, inst.with_masks(shape, self.cfg.segmenter.box_mask))
                embeddings.append(self.head.pool(sets))
                association.append(embeddings[-1] if isinstance(self.head, MeanPoolHead) else self.association_head.pool(sets))
            else:
                embeddings.append(np.zeros((0, self.embedder.dim), np.float32))
                association.append(np.zeros((0, self.embedder.dim), np.float32))
        small_arr = np.stack(small) if small else np.zeros((0, *INPUT_HW, 3), np.uint8)
        return small_arr, detections, embeddings, association, shape

    def track_with_video_segmenter(self, local: str, timings: dict):
        """Shots from a first decoding pass; then per shot piece one video session of the segmenter over its frames
        (at most ``tracking.max_side_px``), each view embedded inside the segmenter's mask; tracklets from its ids."""
        t = time.perf_counter()
        small, shape = [], (0, 0)
        for _, frame in iter_frames(local):
            shape = frame.shape[:2]
            small.append(cv2.resize(frame, INPUT_HW[::-1], interpolation=cv2.INTER_AREA))
        shots = self.shot_detector.shots_from_frames(np.stack(small)) if small else []
        timings["shots_s"] = time.perf_counter() - t
        t = time.perf_counter()
        segments = split_segments(shots, self.cfg.shots.max_shot_frames)
        end_of = {start: end for _, start, end in segments}
        detections: list[Instances] = [Instances.empty() for _ in small]
        embeddings = [np.zeros((0, self.embedder.dim), np.float32) for _ in small]
        piece: list[np.ndarray] = []
        start = 0
        for idx, frame in iter_frames(local):
            if not piece:
                start = idx
            s = min(1.0, self.cfg.tracking.max_side_px / max(frame.shape[:2]))
            piece.append(frame if s >= 1.0 else cv2.resize(frame, (round(frame.shape[1] * s), round(frame.shape[0] * s)), interpolation=cv2.INTER_AREA))
            if idx + 1 == end_of.get(start, idx + 1):
                self._track_piece(piece, start, s, detections, embeddings)
                piece = []
        if piece:  # a second decoding pass that ended early (a short read): its frames are tracked, not dropped
            self._track_piece(piece, start, s, detections, embeddings)
        timings["scan_s"] = time.perf_counter() - t
        tr = self.cfg.tracking
        tracklets = build_tracklets(
            detections, shots, shape, AssociationParams(min_iou=tr.min_iou), tr.max_missed, tr.min_tracklet_frames,
            self.cfg.shots.max_shot_frames, tr.border_px, max_overlap=tr.max_overlap, occluded_by=tr.occluded_by,
            track_ids_given=True,
        )
        return shots, detections, embeddings, tracklets

    def _track_piece(self, piece: list[np.ndarray], start: int, scale: float, detections: list, embeddings: list) -> None:
        """One video session over consecutive frames (model size) starting at ``start``."""
        for k, (f, inst) in enumerate(zip(piece, self.segmenter.track(piece))):
            if start + k < len(detections):
                detections[start + k], embeddings[start + k] = self._embed_in_masks(f, inst, 1.0 / scale)

    def _embed_in_masks(self, frame: np.ndarray, inst: Instances, to_source: float) -> tuple[Instances, np.ndarray]:
        """The persons of one frame at model size: embedded inside their own masks; returned in source pixels."""
        keep = np.flatnonzero((inst.categories == "person") & (inst.boxes[:, 2] - inst.boxes[:, 0] >= 2)
                              & (inst.boxes[:, 3] - inst.boxes[:, 1] >= 2)) if len(inst) else np.zeros(0, np.int64)
        inst = inst.select(keep)
        if not len(inst):
            return replace(inst, masks=None).rescaled(to_source), np.zeros((0, self.embedder.dim), np.float32)
        if inst.masks is None:
            inst = inst.with_masks(frame.shape[:2], self.cfg.segmenter.box_mask)
        emb = self.head.pool(self.embedder.patch_sets(frame, inst))
        # The mask goes on with the record as RLE at model size (a few hundred bytes, not a frame of booleans):
        # the identity video fills it in each person's colour.
        rles = np.empty(len(inst), object)
        rles[:] = [r["counts"] for r in inst.rles()]
        inst = replace(inst, masks=None, extra={**inst.extra, "mask_rle": rles, "mask_size": np.tile(frame.shape[:2], (len(inst), 1))})
        return inst.rescaled(to_source), emb

    def detect(self, frame: np.ndarray) -> Instances:
        h, w = frame.shape[:2]
        s = min(1.0, self.cfg.tracking.max_side_px / max(h, w))
        if s >= 1.0:
            return self.segmenter.segment([frame])[0]
        small = cv2.resize(frame, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_AREA)
        return self.segmenter.segment([small])[0].rescaled(1.0 / s, (h, w))

    def cluster(self, tracklets: list[Tracklet], dist: np.ndarray, cannot_link: np.ndarray):
        """(labels, Z, indices of the tracklets Z is over)."""
        c = self.cfg.clustering
        if not tracklets:
            return np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64)
        if c.occluded == "cluster":
            labels, z = cluster_hierarchy(dist, cannot_link, c.threshold, c.linkage)
            return labels, z, np.arange(len(tracklets))
        anchor = np.array([bool(tk.clean.any()) for tk in tracklets])
        order = sorted(np.flatnonzero(~anchor), key=lambda i: -len(tracklets[i]))  # longest (surest) first
        labels, z = cluster_with_anchors(dist, cannot_link, anchor, c.threshold, c.linkage, attach_order=order)
        return labels, z, (np.flatnonzero(anchor) if anchor.any() and not anchor.all() else np.arange(len(tracklets)))

    def distances(self, embs: list[np.ndarray]) -> tuple[np.ndarray, bool]:
        d = self.cfg.distance
        if len(embs) < 2:
            return np.zeros((len(embs), len(embs))), False
        if len(embs) > d.shard_above:
            return sharded_distance_matrix(embs, d.block, d.method, d.p, d.q), True
        return distance_matrix(embs, d.method, d.p, d.q), False

    # ------------------------------------------------------------------------------------------ outputs

    def filled(self, tracklets: list[Tracklet], identity: np.ndarray, shots: list[tuple[int, int]], n_frames: int) -> list:
        """(identity, frames, values) of the boxes interpolated into each identity's short gaps (x1, y1, x2, y2, score)."""
        max_gap = self.cfg.tracking.interpolate_gaps
        if max_gap <= 0 or not tracklets:
            return []
        shot_of = shot_index(shots, n_frames)
        by_identity: dict[int, list[Tracklet]] = {}
        for tk, ident in zip(tracklets, identity):
            by_identity.setdefault(int(ident), []).append(tk)
        out = []
        for ident, members in sorted(by_identity.items()):
            frames = np.concatenate([tk.frames for tk in members])
            values = np.concatenate([np.column_stack([tk.boxes, tk.scores]) for tk in members])
            f, v = fill_gaps(frames, values, shot_of, max_gap)
            if len(f):
                out.append((ident, f, v))
        return out

    def write_tables(self, out: Path, vid: str, tracklets: list[Tracklet], identity: np.ndarray, embs: list[np.ndarray]) -> None:
        """``tracklets.parquet``: what was detected (the identity files, ``exports``, add the boxes filled into gaps)."""
        rows = []
        for tk, ident, emb in zip(tracklets, identity, embs):
            for f, box, score, e in zip(tk.frames, tk.boxes, tk.scores, emb):
                rows.append({"video_id": vid, "shot_id": tk.shot_id, "tracklet_id": tk.tracklet_id, "identity": int(ident),
                             "frame": int(f), "bbox": [float(v) for v in box], "score": float(score), "embedding": e.tolist()})
        write_table_atomic(table_from_rows(rows, TRACKLET), out / "tracklets.parquet")

    def write_figures(self, out: Path, vid: str, tracklets: list[Tracklet], identity: np.ndarray, embs: list[np.ndarray], z: np.ndarray,
                      in_tree: np.ndarray) -> dict:
        from reid_ray.viz.dendrogram import plot_dendrogram
        from reid_ray.viz.umap_plot import plot_embedding_clusters

        figures = {}
        if len(in_tree) >= 2:  # the hierarchy is over the clean tracklets; occluded ones were attached after it
            labels = [f"t{tracklets[k].tracklet_id} s{tracklets[k].shot_id} f{tracklets[k].frames[0]}-{tracklets[k].frames[-1]} id{identity[k]}" for k in in_tree]
            plot_dendrogram(z, labels, self.cfg.clustering.threshold, out / "cluster_hierarchy_dendrogram.png",
                            title=f"{vid}: {len(in_tree)} of {len(tracklets)} tracklets (those with clean views)")
            figures["dendrogram"] = "cluster_hierarchy_dendrogram.png"
        shown = plot_sample([len(e) for e in embs], MAX_PLOTTED_VIEWS)
        all_emb = np.concatenate([e[k] for e, k in zip(embs, shown)]) if embs else np.zeros((0, self.embedder.dim), np.float32)
        per_frame_id = np.concatenate([np.full(len(k), i) for k, i in zip(shown, identity)]) if embs else np.zeros(0, np.int64)
        n_views = sum(len(e) for e in embs)
        _, method = plot_embedding_clusters(all_emb, per_frame_id, out / "embedding_clusters_umap.png",
                                            title=f"{vid}: {len(all_emb)} of {n_views} views" if len(all_emb) < n_views else f"{vid}:",
                                            method=self.cfg.embedding_plot)
        figures["embedding_clusters"] = {"file": "embedding_clusters_umap.png", "method": method, "views_plotted": len(all_emb), "views": n_views}
        return figures

    def write_patch_maps(self, out: Path, local: str, tracklets: list[Tracklet], identity: np.ndarray,
                         detections: Sequence[Instances], vid: str) -> bool:
        """``patch_maps.png``: for the most seen identities (up to ``PATCH_MAP_IDENTITIES``), one view each (the
        middle clean view of its longest tracklet with clean views, else the middle view of its longest): the crop, its patches in PCA colours and, with a trained attention
        head, the head's attention. False when there is no view or the embedder gives no patch grid."""
        from reid_ray.records import rle_to_mask
        from reid_ray.viz.patch_maps import plot_patch_maps

        if not hasattr(self.embedder, "feature_maps") or not tracklets:
            return False
        longest: dict[int, Tracklet] = {}
        for tk, ident in zip(tracklets, identity):  # tracklets with clean views first, then the longest
            if (tk.clean.any(), len(tk)) > (longest[int(ident)].clean.any(), len(longest[int(ident)])) if int(ident) in longest else True:
                longest[int(ident)] = tk
        chosen = sorted(longest.items(), key=lambda kv: -len(kv[1]))[:PATCH_MAP_IDENTITIES]
        views = {}
        for ident, tk in chosen:
            usable = np.flatnonzero(tk.clean) if tk.clean.any() else np.arange(len(tk))
            k = usable[len(usable) // 2]
            views[int(tk.frames[k])] = (ident, int(tk.det_index[k]))
        frames, instances, labels = [], [], []
        for f in sorted(views):
            frame = next(iter_frames(local, f, f + 1))[1]  # one frame each: no decoding of the stretches between
            ident, i = views[f]
            inst = detections[f].select(np.array([i]))
            if "mask_rle" in inst.extra:  # the segmenter's own mask, at model size
                mask = rle_to_mask({"size": [int(v) for v in inst.extra["mask_size"][0]], "counts": inst.extra["mask_rle"][0]})
                inst = replace(inst, masks=cv2.resize(mask.astype(np.uint8), frame.shape[1::-1], interpolation=cv2.INTER_NEAREST).astype(bool)[None])
            frames.append(frame)
            instances.append(inst)
            labels.append(f"id {ident} (frame {f})")
        if not frames:
            return False
        heads = {"trained": self.head} if hasattr(self.head, "attention") else {}
        import textwrap

        plot_patch_maps(frames, instances, self.embedder, heads, out / PATCH_MAPS,
                        textwrap.fill(f"{vid}, {self.cfg.embedder.backend} patches: {', '.join(labels)}", 30 + 25 * len(heads)))
        return True

    def write_videos(self, out: Path, local: str, fps: float, tracklets: list[Tracklet], identity: np.ndarray,
                     filled: Sequence[tuple] = (), detections: Sequence[Instances] | None = None) -> None:
        """Identity video and raw-tracklets video: each view's mask filled in its colour where the segmenter gave
        masks (SAM3), else its box outlined."""
        from reid_ray.viz.videos import write_box_videos

        def mask_of(f: int, i: int) -> dict | None:
            extra = detections[f].extra if detections is not None else {}
            if "mask_rle" not in extra:
                return None
            return {"size": [int(v) for v in extra["mask_size"][i]], "counts": extra["mask_rle"][i]}

        by_identity: dict[int, list] = {}
        by_tracklet: dict[int, list] = {}
        for tk, ident in zip(tracklets, identity):
            for f, box, i in zip(tk.frames, tk.boxes, tk.det_index):
                mask = mask_of(int(f), int(i))
                by_identity.setdefault(int(f), []).append((box, int(ident), f"id {int(ident)}", mask))
                by_tracklet.setdefault(int(f), []).append((box, int(tk.tracklet_id), f"t{tk.tracklet_id}", mask))
        for ident, frames, values in filled:
            for f, v in zip(frames, values):
                by_identity.setdefault(int(f), []).append((v[:4], ident, f"id {ident}"))
        write_box_videos(iter_frames(local), fps, {out / "final_reid_output.mp4": by_identity, out / "raw_tracklets_output.mp4": by_tracklet})
