"""Quality of mined pairs on REAL footage, scored against the hand-checked gold set (tests/data/gold/).

Runs the pair job (or reuses a finished run: the job resumes) on the gold clips once per time gap and prints,
per gap, per clip and pooled: the precision of auto `identical` and auto `same_category_different_instance` pairs
(each side matched to a gold box at IoU >= 0.5; a side that is no gold person, e.g. clutter, makes the label wrong),
how many proposed matches went to humans and what they really were, auto `identical` pairs per clip, and the
calibration's estimated error of each auto band beside the error measured on gold.

    python bench/quality_pairs_real.py [--gaps 3,6,9] [--pairs-per-video 16] [--out DIR] [--set KEY=VALUE ...] [--score-only]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "tests" / "data" / "gold"

def precision(c: Counter, label: str) -> str:
    right, wrong, unmatched = c[f"{label}/right"], c[f"{label}/wrong"], c[f"{label}/unmatched"]
    n = right + wrong + unmatched
    return f"{right / n:.3f} ({right}/{n}; {wrong} wrong, {unmatched} on no gold person)" if n else "- (0)"


def print_gap(gap: str, counts: dict[str, Counter], report: dict) -> None:
    pooled = counts["pooled"]
    print(f"\n=== REAL gold clips, gap {gap} s ===")
    for clip in sorted(counts, key=lambda k: (k == "pooled", k)):
        c = counts[clip]
        human_share = c["matches/human"] / c["matches"] if c["matches"] else 0.0
        print(f"{clip:32s} identical {precision(c, 'identical')}")
        print(f"{'':32s} different {precision(c, 'same_category_different_instance')}")
        print(f"{'':32s} matches {c['matches']}, to humans {c['matches/human']} ({human_share:.1%}): really same "
              f"{c['human/same']}, different {c['human/different']}, no gold person {c['human/unmatched']}")
    cal = report.get("calibration", {}).get("person")
    if cal and cal.get("fitted"):
        m = [pooled[f"identical/{v}"] for v in ("right", "wrong", "unmatched")]
        measured = (m[1] + m[2]) / sum(m) if sum(m) else None
        print(f"estimated error of auto identical {cal['estimated_error_accept']}, measured on gold "
              f"{measured if measured is None else round(measured, 4)}; estimated error of auto different "
              f"{cal['estimated_error_reject']}")
    elif cal:
        print(f"person calibration not fitted: {cal.get('reason')}")
    print("routing:", json.dumps(report.get("routing", {})))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gaps", default="3,6,9", help="comma-separated gaps in seconds (the CAVIAR clips last 11.8-24 s)")
    ap.add_argument("--pairs-per-video", type=int, default=16)
    ap.add_argument("--config", default=str(ROOT / "configs/local.yaml"))
    ap.add_argument("--out", default="runs/quality_pairs_real")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--score-only", action="store_true", help="score the runs already under --out (e.g. made by older code)")
    args = ap.parse_args()
    os.environ.setdefault("REID_RAY_MODELS_DIR", str(ROOT.parent / "shared" / "models"))

    from reid_ray.config import SourcesConfig, load_config
    from reid_ray.metrics.pairs import load_gold, score_pairs_by_video
    from reid_ray.pairs_job import all_pairs, run_pairs_job
    from reid_ray.video.sources import list_sources

    gold = load_gold(GOLD)
    if not gold:
        print(f"no gold set under {GOLD}", file=sys.stderr)
        return 2
    missing = [s["video_id"] for s in list_sources(str(GOLD / "manifest.csv"), SourcesConfig())[0] if s["video_id"] not in gold]
    if missing:
        print(f"the gold set has no gt.txt for {missing}: their pairs are not scored", file=sys.stderr)
    summary = {}
    for gap in [g.strip() for g in args.gaps.split(",") if g.strip()]:
        cfg = load_config(args.config, [f"clip_pairs.time_gap_s={gap}", f"clip_pairs.pairs_per_video={args.pairs_per_video}", *args.set])
        out = Path(args.out) / f"gap_{gap}"
        if args.score_only:
            report = json.loads((out / "report.json").read_text())
        else:
            report = run_pairs_job(cfg, str(GOLD / "manifest.csv"), out)
        counts = score_pairs_by_video(all_pairs(out).to_pylist(), gold)
        print_gap(gap, counts, report)
        summary[gap] = {k: dict(v) for k, v in counts.items()}
    total: Counter = Counter()
    for per_clip in summary.values():
        total.update(per_clip.get("pooled", {}))
    print(f"\n=== REAL gold clips, all gaps ({args.gaps}) ===")
    print(f"identical {precision(total, 'identical')}")
    print(f"different {precision(total, 'same_category_different_instance')}")
    print(f"matches {total['matches']}, to humans {total['matches/human']} ({total['matches/human'] / max(total['matches'], 1):.1%}); "
          f"auto identical matches per clip pair {total['matches/identical'] / (len(gold) * args.pairs_per_video * len(summary)):.3f}")
    (Path(args.out) / "quality.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
