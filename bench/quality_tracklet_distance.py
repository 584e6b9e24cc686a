"""The seed's Chamfer-q against the power-mean Chamfer-p as the long-video job's tracklet distance, measured.

For each clip (synthetic footage with exact ground truth; the REAL gold clips of tests/data/gold), the job's
tracker (reid_ray/reid/tracker.py, what the job's actor runs) builds tracklets and their per-frame embeddings once, with
public detections (ground-truth / gold boxes) and with the profile's own detector. Then, per distance method, on
those same tracklets:

* AUC: how well the distance separates tracklets of one person from tracklets of two (each tracklet given the
  true identity its boxes match most; pairs that share a frame are left out: the job never joins them anyway);
* IDF1 of the job's clustering over a grid of thresholds (TrackEval, clips pooled as the job's report pools them):
  the threshold is chosen on the synthetic tune seeds, then applied unchanged to the held-out synthetic seeds
  and to the real clips, since a threshold tuned on synthetic footage is what a profile ships. The best
  threshold on the real clips themselves is printed too, labelled as an oracle.

    python bench/quality_tracklet_distance.py [--config configs/reid_local.yaml] [--tune 1,2,3] [--heldout 8,9,10]
        [--modes public,detector] [--work DIR] [--set key=value] [--real-clips ID,ID] [--methods NAME,NAME]

Prints a table and writes ``<work>/tracklet_distance.json``. Slow (minutes): every clip is embedded once per mode.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "tests" / "data" / "gold"

METHODS = {  # name -> distance config
    "chamfer q=5 (seed)": {"method": "chamfer", "q": 5},
    "chamfer q=10 (seed)": {"method": "chamfer", "q": 10},
    "chamfer q=20 (seed)": {"method": "chamfer", "q": 20},
    "power_chamfer p=3": {"method": "power_chamfer", "p": 3},
    "power_chamfer p=10": {"method": "power_chamfer", "p": 10},
}
THRESHOLDS = [round(0.02 * k, 2) for k in range(1, 31)]


def clips(args) -> dict[str, list[dict]]:
    """Clip sets: {'tune' | 'held-out' | 'real': [{video_id, uri, gt, public}]} (gt: MOTChallenge file)."""
    from reid_ray.mot_format import gt_to_public_detections
    from reid_ray.video.synthetic import SyntheticSpec, generate

    work = Path(args.work)
    videos, dets = work / "videos", work / "detections"
    dets.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[dict]] = {}
    for split, seeds in (("tune", args.tune), ("held-out", args.heldout)):
        out[split] = []
        for s in (int(x) for x in seeds.split(",") if x):
            vid = f"syn_s{s}"
            if not (videos / f"{vid}.mp4").exists():
                generate(SyntheticSpec(video_id=vid, seed=s, n_frames=300, n_people=4, cut_every_s=10), videos)
            gt_to_public_detections(videos / vid / "gt" / "gt.txt", dets / f"{vid}.txt")
            out[split].append({"video_id": vid, "uri": str(videos / f"{vid}.mp4"), "license": "synthetic", "gt": videos / vid / "gt" / "gt.txt"})
    out["real"] = []
    import csv

    with open(GOLD / "manifest.csv") as fh:
        for row in csv.DictReader(fh):
            vid = row["video_id"]
            gt_to_public_detections(GOLD / vid / "gt.txt", dets / f"{vid}.txt")
            uri = row["uri"] if os.path.isabs(row["uri"]) or "://" in row["uri"] else str((GOLD / row["uri"]).resolve())
            out["real"].append({"video_id": vid, "uri": uri, "license": row.get("license", ""), "gt": GOLD / vid / "gt.txt"})
    return out


def tracked(tracker, clip: dict, det_dir: Path | None):
    """(tracklets, per-tracklet embeddings compared (clean views where any), per-tracklet all embeddings)."""
    import numpy as np

    from reid_ray.mot_format import read_public_detections
    from reid_ray.video.decode import local_video, probe

    with local_video(clip["uri"], tracker.cfg.sources) as local:
        info = probe(local)
        given = read_public_detections(det_dir / f"{clip['video_id']}.txt", info.n_frames) if det_dir else None
        result = tracker.track(local, given)
    shots, tracklets, embs = result.shots, result.tracklets, result.views()
    compared = [e[tk.clean] if tk.clean.any() else e for e, tk in zip(embs, tracklets)]
    return {"tracklets": tracklets, "embs": embs, "compared": compared, "shots": shots, "n_frames": info.n_frames, "info": info}


def clustered(cfg, t: dict, dist, threshold: float):
    """The job's identity per tracklet at ``threshold``."""
    from reid_ray.reid.identities import cluster_tracklets
    from reid_ray.tracking.clustering import temporal_overlap

    cannot_link = temporal_overlap([tk.frames for tk in t["tracklets"]])
    labels, _, _ = cluster_tracklets(t["tracklets"], dist, cannot_link, cfg.clustering.model_copy(update={"threshold": threshold}))
    return labels + 1


def identities_of(cfg, t: dict, identity, work: Path, vid: str):
    """The job's MOT rows for these tracklets with these identities (interpolated gaps included)."""
    from reid_ray.mot_format import read_mot, write_mot
    from reid_ray.reid.identities import fill_identity_gaps
    from reid_ray.tracking.exports import MOT_FILE, VideoTracks

    filled = fill_identity_gaps(t["tracklets"], identity, t["shots"], t["n_frames"], cfg.tracking.interpolate_gaps)
    path = work / "scratch" / vid / MOT_FILE
    write_mot(VideoTracks.from_tracklets(vid, t["info"], t["tracklets"], identity, filled), path)
    return read_mot(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs/reid_local.yaml"))
    ap.add_argument("--tune", default="1,2,3")
    ap.add_argument("--heldout", default="8,9,10")
    ap.add_argument("--modes", default="public,detector")
    ap.add_argument("--work", default=None)
    ap.add_argument("--set", action="append", default=[], help="config override, as in the jobs")
    ap.add_argument("--real-clips", default="", help="comma-separated gold video ids (default: all)")
    ap.add_argument("--methods", default="", help="comma-separated names of METHODS (default: all)")
    args = ap.parse_args()
    args.work = args.work or tempfile.mkdtemp(prefix="quality_tracklet_distance_")
    os.environ.setdefault("REID_RAY_MODELS_DIR", str(ROOT.parent / "shared" / "models"))

    import numpy as np
    from sklearn.metrics import roc_auc_score

    from reid_ray.config import ReidJobConfig, load_config
    from reid_ray.metrics.mot import majority_identities, mot_metrics
    from reid_ray.mot_format import read_mot
    from reid_ray.reid.tracker import VideoTracker
    from reid_ray.tracking.clustering import temporal_overlap
    from reid_ray.tracking.distances import distance_matrix

    cfg = load_config(args.config, ["sources.default_license=synthetic", *args.set], ReidJobConfig)
    work = Path(args.work)
    sets = clips(args)
    if args.real_clips:
        sets["real"] = [c for c in sets["real"] if c["video_id"] in set(args.real_clips.split(","))]
    sets = {k: v for k, v in sets.items() if v}
    methods = {k: v for k, v in METHODS.items() if not args.methods or k in args.methods.split(",")}
    print(f"tracklet distances, profile {Path(args.config).name}; synthetic tune {args.tune}, held-out {args.heldout}; "
          f"{len(sets['real'])} REAL gold clips; outputs under {work}", flush=True)
    results: dict = {}
    for mode in args.modes.split(","):
        det_dir = work / "detections" if mode == "public" else None
        tracker = VideoTracker(cfg, public_detections=det_dir is not None)
        per: dict[str, dict] = {}  # split -> method -> {"same": [...], "diff": [...], "idf1": {thr: [IDTP, gt, pred]}}
        t0 = time.perf_counter()
        for split, members in sets.items():
            for clip in members:
                t = tracked(tracker, clip, det_dir)
                gt = read_mot(clip["gt"])
                majority = majority_identities(gt, tracklets_as_mot_frame(t))
                truth = np.array([majority.get(k + 1, -(k + 1)) for k in range(len(t["tracklets"]))])
                apart = ~temporal_overlap([tk.frames for tk in t["tracklets"]])
                iu = np.triu_indices(len(truth), 1)
                pairs = apart[iu]
                for name, kw in methods.items():
                    dist = distance_matrix(t["compared"], **kw) if len(t["compared"]) > 1 else np.zeros((len(t["compared"]),) * 2)
                    acc = per.setdefault(split, {}).setdefault(name, {"same": [], "diff": [], "idf1": {}})
                    same = (truth[iu[0]] == truth[iu[1]])[pairs]
                    acc["same"] += dist[iu][pairs][same].tolist()
                    acc["diff"] += dist[iu][pairs][~same].tolist()
                    scored: dict[bytes, dict] = {}  # many thresholds give the same clustering: TrackEval once each
                    for thr in THRESHOLDS:
                        identity = clustered(cfg, t, dist, thr)
                        key = identity.tobytes()
                        if key not in scored:
                            scored[key] = mot_metrics(gt, identities_of(cfg, t, identity, work, clip["video_id"]))
                        m = scored[key]
                        tot = acc["idf1"].setdefault(thr, [0.0, 0, 0])
                        tot[0] += m["IDF1"] * (m["gt_dets"] + m["pred_dets"]) / 2
                        tot[1] += m["gt_dets"]
                        tot[2] += m["pred_dets"]
                print(f"  [{mode}] {split} {clip['video_id']}: {len(t['tracklets'])} tracklets, {time.perf_counter() - t0:.0f} s", flush=True)

        def pooled(split: str, name: str, thr: float) -> float:
            idtp, g, p = per[split][name]["idf1"][thr]
            return 2 * idtp / max(g + p, 1)

        print(f"\n== {mode} ({'ground-truth / gold boxes' if det_dir else cfg.segmenter.backend + ' detections'})")
        print(f"  {'method':22s} {'AUC tune':>8s} {'AUC real':>8s} {'thr (tune)':>10s} {'IDF1 tune':>9s} {'held-out':>8s} "
              f"{'REAL':>6s} {'REAL oracle (thr)':>18s}")
        results[mode] = {}
        for name in methods:
            row = {}
            for split in per:
                a = per[split][name]
                row[f"auc_{split}"] = float(roc_auc_score([0] * len(a["same"]) + [1] * len(a["diff"]), a["same"] + a["diff"])) if a["same"] and a["diff"] else float("nan")
            tuned = "tune" in per
            best = max(THRESHOLDS, key=lambda thr: pooled("tune", name, thr)) if tuned else float("nan")
            oracle = max(THRESHOLDS, key=lambda thr: pooled("real", name, thr))
            row.update(threshold=best, idf1={s: pooled(s, name, best) if tuned else float("nan") for s in per},
                       real_oracle={"threshold": oracle, "idf1": pooled("real", name, oracle)},
                       curve={s: {str(thr): round(pooled(s, name, thr), 4) for thr in THRESHOLDS} for s in per})
            results[mode][name] = row
            get = lambda d, k: d.get(k, float("nan"))  # noqa: E731  (a split left out: nan)
            print(f"  {name:22s} {get(row, 'auc_tune'):8.3f} {row['auc_real']:8.3f} {best:10.2f} {get(row['idf1'], 'tune'):9.3f} "
                  f"{get(row['idf1'], 'held-out'):8.3f} {get(row['idf1'], 'real'):6.3f} {row['real_oracle']['idf1']:11.3f} ({oracle:.2f})", flush=True)
    (work / "tracklet_distance.json").write_text(json.dumps(results, indent=1))
    print(f"\nwritten {work / 'tracklet_distance.json'}")
    return 0


def tracklets_as_mot_frame(t: dict):
    """Tracklets as MOTChallenge rows, one id per tracklet (k + 1), 1-based frames and pixels."""
    import numpy as np
    import pandas as pd

    rows = [(int(f) + 1, k + 1, *box, score) for k, tk in enumerate(t["tracklets"]) for f, box, score in zip(tk.frames, tk.boxes, tk.scores)]
    a = np.array(rows, dtype=float).reshape(-1, 7)
    return pd.DataFrame({"frame": a[:, 0].astype(np.int64), "id": a[:, 1].astype(np.int64), "x": a[:, 2] + 1, "y": a[:, 3] + 1,
                         "w": a[:, 4] - a[:, 2], "h": a[:, 5] - a[:, 3], "conf": a[:, 6]})


if __name__ == "__main__":
    raise SystemExit(main())
