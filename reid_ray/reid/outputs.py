"""What one video's folder holds, ``<out>/<safe_name(video_id)>/`` (``reid_ray.names``: the id itself for plain ids;
records keep the exact id): ``tracklets.parquet``, the identity files (``reid_ray.tracking.exports``), the dendrogram,
the embedding figure, ``patch_maps.png``, the identity and raw-tracklets videos, and ``report.json``, written last:
its presence marks the video finished."""
from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pyarrow as pa

from reid_ray.io import errors_path, write_json_atomic, write_table_atomic
from reid_ray.names import safe_name
from reid_ray.records import Instances, rle_to_mask
from reid_ray.schemas import BBOX, table_from_rows
from reid_ray.tracking.tracklets import Tracklet
from reid_ray.video.decode import VideoInfo, iter_frames

if TYPE_CHECKING:
    from reid_ray.reid.identities import Identities
    from reid_ray.reid.tracker import TrackedVideo
    from reid_ray.config import ReidJobConfig

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
REPORT = "report.json"
PATCH_MAPS = "patch_maps.png"
PATCH_MAP_IDENTITIES = 4
# Views in the embedding figure: its cost grows with the points (UMAP), a feature film has millions of views.
MAX_PLOTTED_VIEWS = 2000


def video_dir(out: Path, video_id: str) -> Path:
    return Path(out) / safe_name(video_id)


def video_errors_path(out: Path, video_id: str) -> Path:
    return errors_path(out, safe_name(video_id))


def is_finished(out: Path, video_id: str) -> bool:
    return (video_dir(out, video_id) / REPORT).exists()


def write_report(report: dict, folder: Path) -> None:
    write_json_atomic(report, folder / REPORT)  # last: its presence marks the video finished


def video_report(cfg: ReidJobConfig, video: dict, info: VideoInfo, public: bool, tracked: TrackedVideo, ids: Identities,
                 figures: dict, exports: dict, timings: dict, elapsed_s: float) -> dict:
    """``report.json``: counts, shots, each identity's tracklets, the settings that decided them, figures, timings."""
    tracklets = tracked.tracklets
    return {
        "video_id": video["video_id"],
        "uri": video["uri"],
        "license": video.get("license", ""),
        "fps": info.fps,
        "detections": "public" if public else cfg.segmenter.backend,
        "shots": [list(s) for s in tracked.shots],
        "counts": {
            "n_frames": info.n_frames,
            "n_shots": len(tracked.shots),
            "n_detections": int(sum(len(d) for d in tracked.detections)),
            "n_tracklets": len(tracklets),
            "n_tracklet_frames": int(sum(len(tk) for tk in tracklets)),
            "n_interpolated_boxes": int(sum(len(f) for _, f, _ in ids.filled)),
            # boxes under segmenter.score_threshold that continued a track (tracking.low_score_threshold)
            "n_low_score_boxes": 0 if public else int(sum((tk.scores < cfg.segmenter.score_threshold).sum() for tk in tracklets)),
            "n_cannot_link_pairs": int(np.triu(ids.cannot_link, 1).sum()),
            "n_identities": len(np.unique(ids.identity)),
        },
        "clusters": ids.members(tracklets),
        "distance": {**cfg.distance.model_dump(), "sharded": ids.sharded},
        "clustering": cfg.clustering.model_dump(),
        "figures": figures,
        "track_exports": exports,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        # what the pictures and videos cost, as a share of the video's run so far
        "outputs_share": round((timings["figures_s"] + timings["videos_s"]) / max(elapsed_s, 1e-9), 3),
    }


def write_tracklets_table(folder: Path, vid: str, tracklets: list[Tracklet], identity: np.ndarray, views: list[np.ndarray]) -> None:
    """``tracklets.parquet``: what was detected (the identity files, ``exports``, add the boxes filled into gaps)."""
    rows = []
    for tk, ident, emb in zip(tracklets, identity, views):
        for f, box, score, e in zip(tk.frames, tk.boxes, tk.scores, emb):
            rows.append({"video_id": vid, "shot_id": tk.shot_id, "tracklet_id": tk.tracklet_id, "identity": int(ident),
                         "frame": int(f), "bbox": [float(v) for v in box], "score": float(score), "embedding": e.tolist()})
    write_table_atomic(table_from_rows(rows, TRACKLET), folder / "tracklets.parquet")


def plot_sample(lengths: Sequence[int], limit: int) -> list[np.ndarray]:
    """Per tracklet, the views to plot: all when the video has at most ``limit``; else evenly spaced views in
    proportion to its length, at least one each (every tracklet stays in the figure)."""
    total = sum(lengths)
    if total <= limit:
        return [np.arange(n) for n in lengths]
    share = max(limit - len(lengths), 0) / total
    return [np.unique(np.linspace(0, n - 1, max(1, int(n * share))).round().astype(np.int64)) for n in lengths]


def write_figures(folder: Path, vid: str, tracklets: list[Tracklet], identity: np.ndarray, views: list[np.ndarray],
                  hierarchy: np.ndarray, in_tree: np.ndarray, threshold: float, dim: int, method: str) -> dict:
    """The dendrogram (over the tracklets ``in_tree``, cut at the clustering ``threshold``) and the embedding figure
    (``method`` umap or pca, at most ``MAX_PLOTTED_VIEWS`` views); what was drawn, for the report."""
    from reid_ray.viz.dendrogram import plot_dendrogram
    from reid_ray.viz.umap_plot import plot_embedding_clusters

    figures = {}
    if len(in_tree) >= 2:  # the hierarchy is over the clean tracklets; occluded ones were attached after it
        labels = [f"t{tracklets[k].tracklet_id} s{tracklets[k].shot_id} f{tracklets[k].frames[0]}-{tracklets[k].frames[-1]} id{identity[k]}" for k in in_tree]
        plot_dendrogram(hierarchy, labels, threshold, folder / "cluster_hierarchy_dendrogram.png",
                        title=f"{vid}: {len(in_tree)} of {len(tracklets)} tracklets (those with clean views)")
        figures["dendrogram"] = "cluster_hierarchy_dendrogram.png"
    shown = plot_sample([len(e) for e in views], MAX_PLOTTED_VIEWS)
    all_emb = np.concatenate([e[k] for e, k in zip(views, shown)]) if views else np.zeros((0, dim), np.float32)
    per_frame_id = np.concatenate([np.full(len(k), i) for k, i in zip(shown, identity)]) if views else np.zeros(0, np.int64)
    n_views = sum(len(e) for e in views)
    _, used = plot_embedding_clusters(all_emb, per_frame_id, folder / "embedding_clusters_umap.png",
                                      title=f"{vid}: {len(all_emb)} of {n_views} views" if len(all_emb) < n_views else f"{vid}:",
                                      method=method)
    figures["embedding_clusters"] = {"file": "embedding_clusters_umap.png", "method": used, "views_plotted": len(all_emb), "views": n_views}
    return figures


def _mask_of(detections: Sequence[Instances] | None, f: int, i: int) -> dict | None:
    """View i of frame f's mask as RLE at model size (a video segmenter's), or None."""
    extra = detections[f].extra if detections is not None else {}
    if "mask_rle" not in extra:
        return None
    return {"size": [int(v) for v in extra["mask_size"][i]], "counts": extra["mask_rle"][i]}


def write_patch_maps(folder: Path, local: str, vid: str, tracklets: list[Tracklet], identity: np.ndarray,
                     detections: Sequence[Instances], embedder, head, embedder_name: str) -> bool:
    """``patch_maps.png``: for the most seen identities (up to ``PATCH_MAP_IDENTITIES``), one view each (the middle
    clean view of its longest tracklet with clean views, else the middle view of its longest): the crop, its patches
    in PCA colours and, with a trained attention head, the head's attention. False when there is no view or the
    embedder gives no patch grid."""
    from reid_ray.viz.patch_maps import plot_patch_maps

    if not hasattr(embedder, "feature_maps") or not tracklets:
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
        mask = _mask_of(detections, f, i)
        if mask is not None:  # the segmenter's own mask, at model size
            full = cv2.resize(rle_to_mask(mask).astype(np.uint8), frame.shape[1::-1], interpolation=cv2.INTER_NEAREST)
            inst = replace(inst, masks=full.astype(bool)[None])
        frames.append(frame)
        instances.append(inst)
        labels.append(f"id {ident} (frame {f})")
    if not frames:
        return False
    heads = {"trained": head} if hasattr(head, "attention") else {}
    plot_patch_maps(frames, instances, embedder, heads, folder / PATCH_MAPS,
                    textwrap.fill(f"{vid}, {embedder_name} patches: {', '.join(labels)}", 30 + 25 * len(heads)))
    return True


def write_videos(folder: Path, local: str, fps: float, tracklets: list[Tracklet], identity: np.ndarray,
                 filled: Sequence[tuple] = (), detections: Sequence[Instances] | None = None) -> None:
    """Identity video and raw-tracklets video: each view's mask filled in its colour where the segmenter gave
    masks (SAM3), else its box outlined."""
    from reid_ray.viz.videos import write_box_videos

    by_identity: dict[int, list] = {}
    by_tracklet: dict[int, list] = {}
    for tk, ident in zip(tracklets, identity):
        for f, box, i in zip(tk.frames, tk.boxes, tk.det_index):
            mask = _mask_of(detections, int(f), int(i))
            by_identity.setdefault(int(f), []).append((box, int(ident), f"id {int(ident)}", mask))
            by_tracklet.setdefault(int(f), []).append((box, int(tk.tracklet_id), f"t{tk.tracklet_id}", mask))
    for ident, frames, values in filled:
        for f, v in zip(frames, values):
            by_identity.setdefault(int(f), []).append((v[:4], ident, f"id {ident}"))
    write_box_videos(iter_frames(local), fps, {folder / "final_reid_output.mp4": by_identity, folder / "raw_tracklets_output.mp4": by_tracklet})
