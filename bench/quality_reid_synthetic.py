"""Identity quality of the long-video job on synthetic footage (exact ground truth), reported as synthetic.

Renders 30 s videos (4 people, a camera cut every 10 s, occluders, exits and re-entries), runs the job's
per-video stage on each (the same code Ray runs, called directly) with the profile's own detector and with the
ground truth given as MOTChallenge public detections, and prints IDF1 / MOTA / HOTA per video and the mean of
the tuning seeds and of the held-out seeds apart. Two more figures per video tell the identity step's errors from
the others: the IDF1 ceiling of its boxes (every box's identity right: detection misses only), and the IDF1 of
its tracklets with each tracklet given its majority true identity (``majority_identity_idf1``: what tracking left
for embeddings and clustering to get right). With a detector, the boxes the job interpolates across gaps are not
in the second figure, so the job can land a little above it.

    python bench/quality_reid_synthetic.py [--config configs/reid_local.yaml] [--tune 1,2,3,4,5,6,7] [--heldout 8,...,15]
        [--modes public,detector] [--set key=value ...]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ROOT = Path(__file__).resolve().parents[1]


def tracklets_as_mot(path: Path):
    """The job's tracklets.parquet as a MOTChallenge frame with one id per tracklet (1-based frames and pixels)."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["shot_id", "tracklet_id", "frame", "bbox", "score"]).to_pandas()
    box = np.stack(t["bbox"].to_numpy()) if len(t) else np.zeros((0, 4))
    ids = pd.factorize(t["shot_id"].astype(str) + "/" + t["tracklet_id"].astype(str))[0] + 1
    return pd.DataFrame({"frame": t["frame"].to_numpy(np.int64) + 1, "id": ids.astype(np.int64), "x": box[:, 0] + 1,
                         "y": box[:, 1] + 1, "w": box[:, 2] - box[:, 0], "h": box[:, 3] - box[:, 1], "conf": t["score"]})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs/reid_local.yaml"))
    ap.add_argument("--tune", default="1,2,3,4,5,6,7", help="seeds the profile was tuned on")
    ap.add_argument("--heldout", default="8,9,10,11,12,13,14,15", help="seeds never looked at while tuning")
    ap.add_argument("--set", action="append", default=[], help="config override, as in the jobs")
    ap.add_argument("--modes", default="public,detector", help="public (ground-truth boxes), detector (the profile's)")
    ap.add_argument("--work", default=None, help="folder for videos and outputs (default: a new temp folder)")
    args = ap.parse_args()
    os.environ.setdefault("REID_RAY_MODELS_DIR", str(ROOT.parent / "shared" / "models"))

    import numpy as np

    from reid_ray.config import ReidJobConfig, load_config
    from reid_ray.metrics.mot import majority_identity_idf1, mot_metrics
    from reid_ray.mot_format import gt_to_public_detections, read_mot
    from reid_ray.stages.reid_video import ReidVideoStage
    from reid_ray.video.synthetic import SyntheticSpec, generate

    # Distances unsharded: no Ray here (sharded == unsharded is a test of its own).
    cfg = load_config(args.config, ["sources.default_license=synthetic", "distance.shard_above=1000000", *args.set], ReidJobConfig)
    work = Path(args.work or tempfile.mkdtemp(prefix="quality_reid_"))
    seeds = {"tune": [int(s) for s in args.tune.split(",") if s], "held-out": [int(s) for s in args.heldout.split(",") if s]}
    videos, dets = work / "videos", work / "detections"
    dets.mkdir(parents=True, exist_ok=True)
    for s in sorted({s for v in seeds.values() for s in v}):
        vid = f"syn_s{s}"
        if not (videos / f"{vid}.mp4").exists():
            generate(SyntheticSpec(video_id=vid, seed=s, n_frames=300, n_people=4, cut_every_s=10), videos)
        gt_to_public_detections(videos / vid / "gt" / "gt.txt", dets / f"{vid}.txt")

    print(f"synthetic footage, profile {Path(args.config).name} {' '.join(args.set)}; outputs under {work}")
    modes = {"public": ("public detections (ground-truth boxes)", dets), "detector": (f"{cfg.segmenter.backend} detections", None)}
    for mode, det_dir in (modes[m] for m in args.modes.split(",")):
        out = work / f"out_{'det' if det_dir else 'cpu'}_{cfg.fingerprint()}"  # a new config never reuses old results
        stage = ReidVideoStage(cfg.model_dump_json(), str(out), str(det_dir) if det_dir else None)
        print(f"\n== {mode}")
        for split, ss in seeds.items():
            idf1, majority = [], []
            for s in ss:
                vid = f"syn_s{s}"
                summary = stage.process({"video_id": vid, "uri": str(videos / f"{vid}.mp4"), "license": "synthetic"})
                if summary["status"] == "error":
                    print(f"  {vid}: ERROR {summary['message'][:200]}")
                    continue
                if summary["status"] == "skipped":  # finished by an earlier run of this config: its report has the counts
                    summary.update(json.loads((stage.out / vid / "report.json").read_text())["counts"], seconds=0.0)
                gt = read_mot(videos / vid / "gt" / "gt.txt")
                m = mot_metrics(gt, read_mot(stage.out / vid / "identities.txt"))
                idf1.append(m["IDF1"])
                majority.append(majority_identity_idf1(gt, tracklets_as_mot(stage.out / vid / "tracklets.parquet")))
                # The IDF1 these boxes would reach with every identity right: 2 TP / (truth + predicted boxes).
                matched = m["gt_dets"] - m["FN"]
                ceiling = 2 * matched / max(m["gt_dets"] + m["pred_dets"], 1)
                print(f"  {split:8s} {vid}: IDF1 {m['IDF1']:.3f} (ceiling of these boxes {ceiling:.3f}, of these tracklets "
                      f"{majority[-1]:.3f}, box recall {matched / max(m['gt_dets'], 1):.3f})  MOTA {m['MOTA']:.3f}  HOTA {m['HOTA']:.3f}  "
                      f"ids {summary['n_identities']} (truth 4)  tracklets {summary['n_tracklets']}  {summary['seconds']:.0f} s")
            if idf1:
                print(f"  {split} mean IDF1 {np.mean(idf1):.3f} over {len(idf1)} videos (tracklets with their majority "
                      f"identity: {np.mean(majority):.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
