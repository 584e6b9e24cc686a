"""Set-head ablation: mean pooling, attention pooling and the transformer, trained with Ray Train (2 gloo
workers, circle loss) on OSNet x0.25 patch sets (or another embedder: --reid-set embedder.backend=...), judged on
videos never seen in training.

Data (cached under --work, so a re-run only redoes what is missing):
- synthetic, labelled: ground-truth tracklets of seeds 100.. (train) and 200.. (test), patches inside the profile's
  box mask of each visible box, as the job cuts a box-only detector's people (``--synthetic-mask exact``: rendered masks);
- real, unlabelled: tracklets the long-video job mines from the CAVIAR and Intel clips in ../shared/video,
  some clips for training and the others held out. Held-out real clips are scored with the half-tracklet
  proxy (``reid_ray.train.evaluate.half_split``), reported apart from the labelled figures, on two galleries:
  every other tracklet (fragments of one person count as negatives) and only the people in view at the same
  time (certain negatives, fewer of them).

Prints the ablation table, writes ``report.json`` and ``patch_maps_*.png`` (attention and patch PCA).

    python bench/ablation_heads.py [--work DIR] [--epochs 15] [--set seed=1] [--synthetic-mask core]
        [--reid-set embedder.backend=efficientnet_lite0]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REAL_TRAIN = ["caviar/EnterExitCrossingPaths1front.mpg", "caviar/OneLeaveShop1front.mpg", "caviar/TwoLeaveShop2front.mpg",
              "intel/one-by-one-person-detection.mp4"]
REAL_TEST = ["caviar/EnterExitCrossingPaths2front.mpg", "caviar/OneLeaveShopReenter1front.mpg", "caviar/OneLeaveShopReenter2front.mpg"]
KINDS = ("mean", "attention", "transformer")


def mine(tracker, clips: list[str], dest: Path) -> Path:
    from reid_ray.train.data import mined_tracklet_rows, write_samples

    if not dest.exists():
        rows = []
        for clip in clips:
            rows += mined_tracklet_rows(tracker, str(SHARED / "video" / clip), Path(clip).stem, every_k=3)
        write_samples(dest, rows)
    return dest


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/ablation_heads")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--train-videos", type=int, default=8)
    ap.add_argument("--test-videos", type=int, default=4)
    ap.add_argument("--set", action="append", default=[], help="train.yaml override for every head")
    ap.add_argument("--synthetic-mask", choices=("exact", "box", "core"), default=None,
                    help="patches of synthetic views: inside the exact visible mask, or inside a mask made from the box "
                         "(default: the profile's segmenter.box_mask, which is what the job feeds a box-only detector's head)")
    ap.add_argument("--reid-set", action="append", default=[],
                    help="reid_local.yaml override for mining and embedding, e.g. embedder.backend=efficientnet_lite0")
    args = ap.parse_args()
    os.environ.setdefault("REID_RAY_MODELS_DIR", str(SHARED / "models"))
    work = Path(args.work)

    import ray

    from reid_ray.config import ReidJobConfig, TrainConfig, load_config
    from reid_ray.models.heads import MeanPoolHead
    from reid_ray.models.set_heads import TrainedHead
    from reid_ray.reid.tracker import VideoTracker
    from reid_ray.train.data import build_from_synthetic, read_samples
    from reid_ray.train.evaluate import evaluate_heads, half_split
    from reid_ray.train.trainer import run_training

    t0 = time.perf_counter()
    reid_cfg = load_config(ROOT / "configs/reid_local.yaml", args.reid_set, ReidJobConfig)
    tracker = VideoTracker(reid_cfg)
    embedder = tracker.embedder
    mask = args.synthetic_mask or reid_cfg.segmenter.box_mask
    train_dir = work / f"train_{mask}"  # training reads the whole folder: one folder per kind of synthetic mask
    train_dir.mkdir(parents=True, exist_ok=True)
    syn_train = train_dir / "synthetic.parquet"
    if not syn_train.exists():
        build_from_synthetic(syn_train, args.train_videos, 100, embedder, every_k=3, mask=mask, cut_every_s=10, n_frames=300)
    syn_test = work / f"synthetic_test_{mask}.parquet"
    if not syn_test.exists():
        build_from_synthetic(syn_test, args.test_videos, 200, embedder, every_k=3, mask=mask, cut_every_s=10, n_frames=300)
    mine(tracker, REAL_TRAIN, train_dir / "real_mined.parquet")
    real_test = mine(tracker, REAL_TEST, work / "real_test.parquet")
    print(f"data ready in {time.perf_counter() - t0:.0f} s", flush=True)

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    checkpoints, history = {}, {}
    for kind in KINDS:
        cfg = load_config(ROOT / "configs/train.yaml", [f"head.kind={kind}", f"head.in_dim={embedder.dim}", f"epochs={args.epochs}", *args.set], TrainConfig)
        t = time.perf_counter()
        result = run_training(cfg, str(train_dir), str(work / "runs"), name=f"{reid_cfg.embedder.backend}_{mask}_{kind}")
        ckpt = Path(result.checkpoint.path) / "head.pt"
        checkpoints[kind] = str(ckpt)
        history[kind] = {"train_s": round(time.perf_counter() - t, 1), **{k: result.metrics[k] for k in ("epoch", "loss", "samples_per_s")}}
        print(f"trained {kind}: {history[kind]}", flush=True)
    ray.shutdown()

    heads = {"backbone_mean_pool (untrained)": MeanPoolHead(), **{f"{k} (trained)": TrainedHead(p) for k, p in checkpoints.items()}}
    synthetic = evaluate_heads(read_samples(syn_test), heads)
    halves = half_split(read_samples(real_test))
    real = evaluate_heads(halves, heads)
    together = evaluate_heads(halves, heads, gallery="cooccurring")
    report = {"embedder": reid_cfg.embedder.backend, "epochs": args.epochs, "synthetic_mask": mask, "checkpoints": checkpoints, "training": history,
              "synthetic_heldout (labelled, seeds 200..)": synthetic, "real_heldout_half_tracklet_proxy": real,
              "real_heldout_half_tracklet_proxy_cooccurring_gallery": together,
              "real_test_clips": REAL_TEST, "real_train_clips": REAL_TRAIN}
    (work / "report.json").write_text(json.dumps(report, indent=1))

    print(f"\n{'head':34s} | synthetic held-out mAP  R1    R5  | real proxy, all tracklets: mAP  R1    R5  "
          f"| real proxy, in view together: mAP  R1")
    for name in heads:
        s, r, c = synthetic[name], real[name], together[name]
        print(f"{name:34s} | {s['mAP']:.3f} {s['rank1']:.3f} {s['rank5']:.3f} (n={s['n_queries']}) | "
              f"{r['mAP']:.3f} {r['rank1']:.3f} {r['rank5']:.3f} (n={r['n_queries']}) | "
              f"{c['mAP']:.3f} {c['rank1']:.3f} (n={c['n_queries']}, gallery {c['mean_gallery']:.1f})")

    pictures(work, embedder, {k: TrainedHead(p) for k, p in checkpoints.items() if k != "mean"})
    print(f"\nreport: {work / 'report.json'}; pictures: {sorted(p.name for p in work.glob('patch_maps_*.png'))}")
    return 0


def pictures(work: Path, embedder, heads: dict) -> None:
    """Attention and patch PCA of four rendered people (exact masks) and of people YOLOX finds on a real clip."""
    import cv2
    import numpy as np

    from reid_ray.records import Instances, rle_to_mask
    from reid_ray.video.synthetic import SyntheticSpec, render
    from reid_ray.viz.patch_maps import plot_patch_maps

    frames, insts = [], []
    for k, fr in enumerate(render(SyntheticSpec(video_id="pic", seed=200, n_frames=40, n_people=4, occluders=False))):
        if k < 39:
            continue
        for row in [r for r in fr.rows if r.visibility > 0.9][:4]:
            mask = rle_to_mask(row.rle)[None]
            frames.append(np.ascontiguousarray(fr.image[:, :, ::-1]))
            insts.append(Instances.from_arrays([row.visible_box], [1.0], ["person"], masks=mask))
    plot_patch_maps(frames, insts, embedder, heads, work / "patch_maps_synthetic.png", "synthetic people (exact masks)")

    from reid_ray.models.yolox import YoloxDetector, resolve_model_file

    det = YoloxDetector(resolve_model_file(None, Path(os.environ["REID_RAY_MODELS_DIR"])), {"person": ["person"]}, 0.35, 0.45, 416)
    cap = cv2.VideoCapture(str(SHARED / "video" / REAL_TEST[1]))
    frames, insts = [], []
    for idx in range(400):
        ok, bgr = cap.read()
        if not ok or idx not in (100, 380):
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        found = det.segment([rgb])[0]
        for i in np.argsort(-found.scores)[:2]:
            frames.append(rgb)
            insts.append(found.select(np.array([i])))
    cap.release()
    if frames:
        plot_patch_maps(frames, insts, embedder, heads, work / "patch_maps_caviar.png", "CAVIAR (YOLOX boxes, core mask)")


if __name__ == "__main__":
    raise SystemExit(main())
