"""Identity quality of the long-video job on REAL footage, scored against the hand-checked gold set
(tests/data/gold/: six CAVIAR clips and the Intel clip).

Runs the job's per-video stage (the code Ray runs, called directly) on each gold clip with the gold boxes given as
public detections and with the profile's own detector, and prints IDF1 / MOTA / HOTA per clip and pooled over all
clips (TrackEval over the clips' frames, each summed as one sequence would be: IDTP, IDFP, IDFN added up).
The gold boxes started as this profile's detections, so the detector path scores identities on nearly the same
boxes; people the detector never found are not in the gold set (see tests/data/gold/README.md).

    python bench/quality_reid_real.py [--config configs/reid_local.yaml] [--modes public,detector] [--clips ID,ID] [--set key=value ...]
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
GOLD = ROOT / "tests" / "data" / "gold"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs/reid_local.yaml"))
    ap.add_argument("--set", action="append", default=[], help="config override, as in the jobs")
    ap.add_argument("--modes", default="public,detector", help="public (gold boxes), detector (the profile's)")
    ap.add_argument("--work", default=None, help="folder for outputs (default: a new temp folder)")
    ap.add_argument("--clips", default="", help="comma-separated gold video ids to score (default: all)")
    args = ap.parse_args()
    os.environ.setdefault("REID_RAY_MODELS_DIR", str(ROOT.parent / "shared" / "models"))

    import ray

    from quality_reid_synthetic import tracklets_as_mot
    from reid_ray.config import ReidJobConfig, load_config
    from reid_ray.metrics.mot import majority_identity_idf1, mot_metrics
    from reid_ray.mot_format import gt_to_public_detections, read_mot
    from reid_ray.stages.reid_video import ReidVideoStage
    from reid_ray.video.sources import list_sources

    cfg = load_config(args.config, args.set, ReidJobConfig)
    sources, refused = list_sources(str(GOLD / "manifest.csv"), cfg.sources)
    if args.clips:
        sources = [v for v in sources if v["video_id"] in set(args.clips.split(","))]
    if refused:
        print(f"refused gold sources: {refused}", file=sys.stderr)
        return 2
    work = Path(args.work or tempfile.mkdtemp(prefix="quality_reid_real_"))
    dets = work / "detections"
    dets.mkdir(parents=True, exist_ok=True)
    for s in sources:
        gt_to_public_detections(GOLD / s["video_id"] / "gt.txt", dets / f"{s['video_id']}.txt")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # long clips shard their distances over Ray
    print(f"REAL gold clips, profile {Path(args.config).name} {' '.join(args.set)}; outputs under {work}")
    modes = {"public": ("public detections (gold boxes)", dets), "detector": (f"{cfg.segmenter.backend} detections", None)}
    results: dict[str, dict] = {}
    for mode, det_dir in (modes[m] for m in args.modes.split(",")):
        out = work / f"out_{'gold' if det_dir else 'det'}_{cfg.fingerprint()}"
        stage = ReidVideoStage(cfg.model_dump_json(), str(out), str(det_dir) if det_dir else None)
        print(f"\n== {mode}")
        totals = {"IDTP": 0.0, "gt": 0, "pred": 0}
        for s in sources:
            vid = s["video_id"]
            summary = stage.process(s)
            if summary["status"] == "error":
                print(f"  {vid}: ERROR {summary['message'][:200]}")
                continue
            gt = read_mot(GOLD / vid / "gt.txt")
            m = mot_metrics(gt, read_mot(stage.out / vid / "identities.txt"))
            majority = majority_identity_idf1(gt, tracklets_as_mot(stage.out / vid / "tracklets.parquet"))
            # IDF1 = 2 IDTP / (gt boxes + predicted boxes): summing IDTP and the box counts pools the clips.
            totals["IDTP"] += m["IDF1"] * (m["gt_dets"] + m["pred_dets"]) / 2
            totals["gt"] += m["gt_dets"]
            totals["pred"] += m["pred_dets"]
            print(f"  {vid:32s} IDF1 {m['IDF1']:.3f} (tracklets with their majority identity {majority:.3f})  "
                  f"MOTA {m['MOTA']:.3f}  HOTA {m['HOTA']:.3f}  ids {m['pred_ids']} (gold {m['gt_ids']})  IDSW {m['IDSW']}")
        pooled = 2 * totals["IDTP"] / max(totals["gt"] + totals["pred"], 1)
        print(f"  pooled IDF1 {pooled:.3f} over {totals['gt']} gold boxes")
        results[mode] = {"pooled_idf1": pooled, **totals}
    (work / "quality.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
