"""Quality of mined pairs on synthetic footage (exact ground truth), reported as synthetic.

Generates a corpus with seeds the thresholds were not tuned on (tuning used seed 21), runs the CPU profile and
prints the precision of each (label, verified_by, kind) group, how many routed pairs humans were spared, and
what the pairs sent to humans really were.

    python bench/quality_pairs_synthetic.py [--videos 8] [--seed 31] [--gaps 3:15]
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--gaps", default="3:15", help="a gap or a range lo:hi in seconds")
    ap.add_argument("--cut-every", type=float, default=None, help="camera cuts every N seconds")
    args = ap.parse_args()
    os.environ.setdefault("REID_RAY_MODELS_DIR", str(ROOT.parent / "shared" / "models"))

    from reid_ray.config import load_config
    from reid_ray.metrics.pairs import evaluate_pairs, pending_truth
    from reid_ray.pairs_job import all_pairs, run_pairs_job
    from reid_ray.video.synthetic import generate_corpus

    work = Path(tempfile.mkdtemp(prefix="quality_pairs_"))
    videos = generate_corpus(work / "input", n_videos=args.videos, seed=args.seed, n_frames=300, cut_every_s=args.cut_every)
    lo, _, hi = args.gaps.partition(":")
    gap = f"[{lo}, {hi}]" if hi else lo
    cfg = load_config(ROOT / "configs/local.yaml", [f"clip_pairs.time_gap_s={gap}"])
    report = run_pairs_job(cfg, str(work / "input/manifest.csv"), work / "out")
    pairs = all_pairs(work / "out").to_pylist()
    gts = {v.video_id: v.ground_truth for v in videos}
    quality = evaluate_pairs(pairs, gts)
    print(f"\nSYNTHETIC footage: {args.videos} videos x 30 s, seed {args.seed}, gap {args.gaps} s, CPU profile")
    print(json.dumps(quality, indent=1))
    print("routing:", json.dumps(report["routing"]))
    print("pairs sent to humans were really:", dict(pending_truth(pairs, gts)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
