"""Per-stage throughput of the pair-mining job on the CPU profile, and what the whole Ray pipeline reaches.

Prints frames/s (decode, segment, faces), instances/s (embed), pairs/s (propose), each stage measured alone
in this process on one core, then the whole job through Ray Data with N segment actors, its peak memory
(driver plus every Ray worker, sampled), and the share of the slowest stage's own throughput (times N)
that the pipeline reaches. Figures from one run on this machine; the machine is noisy, compare ratios.

    python bench/bench_pairs.py [--videos 4] [--seconds 30] [--actors 2]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED_MODELS = ROOT.parent / "shared" / "models"


class PeakRss:
    """Sample the summed RSS of this process and all Ray processes every 0.2 s."""

    def __init__(self) -> None:
        import psutil

        self.psutil = psutil
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = self.psutil.Process()
        while not self._stop.is_set():
            total = me.memory_info().rss
            for p in self.psutil.process_iter(["name", "cmdline"]):
                try:
                    cmd = " ".join(p.info["cmdline"] or [])
                    if p.pid != me.pid and ("ray::" in cmd or "raylet" in cmd or "gcs_server" in cmd or "ray/_private" in cmd):
                        total += p.memory_info().rss
                except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def stage_throughput(cfg, videos: list[dict]) -> dict:
    """Each stage alone, one thread, on the same sampled frames the job uses."""
    import torch

    from reid_ray.models import registry
    from reid_ray.stages.clip_pairs import sample_frames, select_clip_pairs
    from reid_ray.stages.propose import propose_video
    from reid_ray.video.decode import probe, read_frames

    torch.set_num_threads(1)
    seg, faces, emb, head = (registry.build_segmenter(cfg), registry.build_face_detector(cfg), registry.build_embedder(cfg), registry.build_head(cfg))
    frames, t_decode = [], 0.0
    for v in videos:
        info = probe(v["uri"])
        for cp in select_clip_pairs(v, info.fps, info.n_frames, cfg.clip_pairs):
            for s in "ab":
                idx = sample_frames(cp[f"{s}_start_frame"], cp[f"{s}_end_frame"], cfg.sampling.frames_per_clip)
                got, dt = timed(read_frames, v["uri"], idx)
                frames += got
                t_decode += dt
    seg.segment(frames[:1])  # warm-up: first calls pay one-off initialisation
    inst, t_seg = timed(lambda: [seg.segment([f])[0] for f in frames])
    _, t_faces = timed(lambda: [faces.detect(f) for f in frames]) if faces else (None, float("nan"))
    inst = [i.with_masks(f.shape[:2]) for i, f in zip(inst, frames)]
    emb.patch_sets(frames[0], inst[0])
    n_inst = sum(len(i) for i in inst)
    _, t_emb = timed(lambda: [head.pool(emb.patch_sets(f, i)) for f, i in zip(frames, inst) if len(i)])
    return {
        "frames": len(frames),
        "instances": n_inst,
        "decode_frames_per_s": len(frames) / t_decode,
        "segment_frames_per_s": len(frames) / t_seg,
        "faces_frames_per_s": len(frames) / t_faces,
        "embed_instances_per_s": n_inst / t_emb,
        "embed_frames_per_s": len(frames) / t_emb,
        "_propose": propose_video,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--actors", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("REID_RAY_MODELS_DIR", str(SHARED_MODELS))

    from reid_ray.config import load_config
    from reid_ray.io import read_tables
    from reid_ray.pairs_job import all_pairs, run_pairs_job
    import pyarrow.compute as pc

    from reid_ray.schemas import CANDIDATE, CLIP_PAIR
    from reid_ray.video.sources import list_sources
    from reid_ray.video.synthetic import generate_corpus

    work = Path(tempfile.mkdtemp(prefix="bench_pairs_"))
    generate_corpus(work / "input", n_videos=args.videos, seed=123, n_frames=int(args.seconds * 10))
    cfg = load_config(ROOT / "configs/local.yaml", [f"resources.segment.max_actors={args.actors}", f"resources.segment.min_actors={args.actors}", f"resources.num_cpus={max(2, args.actors)}"])
    videos, _ = list_sources(str(work / "input/manifest.csv"), cfg.sources)

    print(f"bench_pairs: {args.videos} synthetic videos x {args.seconds:g} s, CPU profile, {os.cpu_count()} cores")
    alone = stage_throughput(cfg, videos)
    propose = alone.pop("_propose")

    with PeakRss() as mem:
        t0 = time.perf_counter()
        report = run_pairs_job(cfg, str(work / "input/manifest.csv"), work / "out")
        wall = time.perf_counter() - t0
    cands = read_tables(list((work / "out/candidates").rglob("*.parquet")), CANDIDATE)
    clip_pairs = read_tables(list((work / "out/clip_pairs").glob("*.parquet")), CLIP_PAIR).to_pylist()

    def propose_all():
        for v in videos:
            mine = [c for c in clip_pairs if c["video_id"] == v["video_id"]]
            propose(mine, cands.filter(pc.equal(cands["video_id"], v["video_id"])), cfg.proposal)

    _, t_prop = timed(propose_all)
    n_pairs = all_pairs(work / "out").num_rows
    frames = alone["frames"]
    pipeline_fps = frames / wall
    per_frame = {k: v for k, v in alone.items() if k.endswith("frames_per_s")}
    slowest_name = min(per_frame, key=per_frame.get)
    # Stages of one frame run one after another inside an actor: the actor's own rate combines them.
    actor_fps = 1.0 / sum(1.0 / per_frame[k] for k in ("decode_frames_per_s", "segment_frames_per_s", "faces_frames_per_s", "embed_frames_per_s") if np.isfinite(per_frame[k]))

    print("\nstage alone (1 thread)        throughput")
    print(f"  decode                      {alone['decode_frames_per_s']:8.1f} frames/s")
    print(f"  segment (YOLOX-nano)        {alone['segment_frames_per_s']:8.1f} frames/s")
    print(f"  faces (dlib HOG + 5 kp)     {alone['faces_frames_per_s']:8.1f} frames/s")
    print(f"  embed (EffNet-Lite0 + mean) {alone['embed_instances_per_s']:8.1f} instances/s ({alone['embed_frames_per_s']:.1f} frames/s, {alone['instances'] / frames:.1f} instances/frame)")
    print(f"  propose + route             {n_pairs / t_prop:8.1f} pairs/s")
    print(f"  one actor, all stages       {actor_fps:8.1f} frames/s")
    print(f"\nwhole job through Ray Data ({args.actors} segment actors): {frames} frames in {wall:.1f} s = {pipeline_fps:.2f} frames/s, {n_pairs} pairs")
    print(f"  peak memory (driver + Ray processes): {mem.peak / 2**30:.2f} GiB")
    print(f"  slowest stage: {slowest_name} at {per_frame[slowest_name]:.1f} frames/s")
    print(f"  pipeline / (slowest stage x {args.actors} actors) = {pipeline_fps / (per_frame[slowest_name] * args.actors):.2f}")
    print(f"  pipeline / (one actor's all-stage rate x {args.actors}) = {pipeline_fps / (actor_fps * args.actors):.2f}")
    print(f"  (job total includes Ray start-up and actor model loading: report seconds {report['seconds']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
