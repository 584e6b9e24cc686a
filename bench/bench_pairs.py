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


ROOT = Path(__file__).resolve().parents[1]
SHARED_MODELS = ROOT.parent / "shared" / "models"


class PeakRss:
    """Sample the summed RSS of this process and all Ray processes every 0.2 s (from /proc: Linux only)."""

    RAY_MARKERS = ("ray::", "raylet", "gcs_server", "ray/_private", "ray/dashboard")

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss(pid: str) -> int:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> int:
        total = self._rss(str(os.getpid()))
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="ignore")
                if int(pid) != os.getpid() and any(m in cmd for m in self.RAY_MARKERS):
                    total += self._rss(pid)
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
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
    from reid_ray.pairs.clip_pairs import sample_frames, select_clip_pairs
    from reid_ray.pairs.proposal import propose_video
    from reid_ray.video.decode import probe, read_frames

    torch.set_num_threads(1)
    seg, faces, embedders = registry.build_segmenter(cfg), registry.build_face_detector(cfg), registry.build_category_embedders(cfg)
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
    embedders.embed(frames[0], inst[0])
    n_inst = sum(len(i) for i in inst)
    _, t_emb = timed(lambda: [embedders.embed(f, i) for f, i in zip(frames, inst) if len(i)])
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


def segment_stage_alone(cfg, videos: list[dict]) -> tuple[int, float]:
    """The slowest stage's own throughput: the model stage (ClipPairSegmentStage) on every clip pair, its frames
    decoded beforehand (as the decode actors hand them over), in this process, one thread."""
    import torch

    from reid_ray.pairs.clip_pairs import select_clip_pairs
    from reid_ray.stages.decode import DecodeClipPairs
    from reid_ray.stages.segment import ClipPairSegmentStage
    from reid_ray.video.decode import probe

    torch.set_num_threads(1)
    out = tempfile.mkdtemp(prefix="bench_seg_")
    stage = ClipPairSegmentStage(cfg.model_dump_json(), out)
    decoder = DecodeClipPairs(cfg.model_dump_json(), out)
    clip_pairs = []
    for v in videos:
        info = probe(v["uri"])
        clip_pairs += select_clip_pairs(v, info.fps, info.n_frames, cfg.clip_pairs)
    decoded = [decoder.process(cp) for cp in clip_pairs]
    warm = ClipPairSegmentStage(cfg.model_dump_json(), tempfile.mkdtemp(prefix="bench_warm_"))
    warm.process(decoded[0])
    t = time.perf_counter()
    for row in decoded:
        stage.process(row)
    return len(decoded), time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--actors", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("REID_RAY_MODELS_DIR", str(SHARED_MODELS))

    import pyarrow.compute as pc

    from reid_ray.calibration import Calibration
    from reid_ray.config import load_config
    from reid_ray.io import read_tables
    from reid_ray.pairs_job import all_pairs, run_pairs_job
    from reid_ray.schemas import CANDIDATE, CLIP_PAIR
    from reid_ray.video.sources import list_sources
    from reid_ray.video.synthetic import generate_corpus

    work = Path(tempfile.mkdtemp(prefix="bench_pairs_"))
    generate_corpus(work / "input", n_videos=args.videos, seed=123, n_frames=int(args.seconds * 10))
    n = args.actors
    # The model actors share what the light stages (probe, decode: 1 CPU together) leave of 2 CPUs.
    cfg = load_config(ROOT / "configs/local.yaml", [f"resources.segment.max_actors={n}", f"resources.segment.min_actors={n}",
                                                     f"resources.segment.num_cpus={1.0 / n:g}", "resources.num_cpus=2"])
    videos, _ = list_sources(str(work / "input/manifest.csv"), cfg.sources)
    print(f"bench_pairs: {args.videos} synthetic videos x {args.seconds:g} s, CPU profile, {os.cpu_count()} cores")

    models = stage_throughput(cfg, videos)
    propose = models.pop("_propose")
    n_clips, t_alone = segment_stage_alone(cfg, videos)

    with PeakRss() as mem:
        t0 = time.perf_counter()
        report = run_pairs_job(cfg, str(work / "input/manifest.csv"), work / "out")
        wall = time.perf_counter() - t0
    cands = read_tables(list((work / "out/candidates").rglob("*.parquet")), CANDIDATE)
    clip_pairs = read_tables(list((work / "out/clip_pairs").glob("*.parquet")), CLIP_PAIR).to_pylist()

    calibration = Calibration.from_json((work / "out/calibration.json").read_text())

    def propose_all():
        for v in videos:
            mine = [c for c in clip_pairs if c["video_id"] == v["video_id"]]
            propose(mine, cands.filter(pc.equal(cands["video_id"], v["video_id"])), cfg.proposal, calibration)

    _, t_prop = timed(propose_all)
    n_pairs = all_pairs(work / "out").num_rows
    stage_rate = n_clips / t_alone
    pipe_rate = n_clips / wall
    print("\nmodels alone, one thread, on the sampled frames:")
    print(f"  decode                      {models['decode_frames_per_s']:8.1f} frames/s")
    print(f"  segment (YOLOX-nano)        {models['segment_frames_per_s']:8.1f} frames/s")
    print(f"  faces (dlib HOG + 5 kp)     {models['faces_frames_per_s']:8.1f} frames/s")
    print(f"  embed (per category + mean) {models['embed_instances_per_s']:8.1f} instances/s ({models['instances'] / models['frames']:.1f} instances/frame)")
    print(f"  propose + route             {n_pairs / t_prop:8.1f} pairs/s")
    model_wall = report["this_run"]["model_stages"]["wall_s"]
    print("\nmodel stage alone (slowest stage: dense tracking, faces, embed, quality on decoded frames), one thread:")
    print(f"  {n_clips} clip pairs in {t_alone:.1f} s = {stage_rate:.3f} clip pairs/s")
    print(f"\nwhole job through Ray Data, {n} model actor(s) beside the decode actors; Ray start-up, model loading, calibration,")
    print("routing and review packets included:")
    print(f"  {n_clips} clip pairs in {wall:.1f} s = {pipe_rate:.3f} clip pairs/s, {n_pairs} pairs; peak memory {mem.peak / 2**30:.2f} GiB (driver + Ray processes)")
    print(f"  model stages (probe -> decode -> segment) streamed in {model_wall:.1f} s = {n_clips / model_wall:.3f} clip pairs/s")
    print("  per stage (rows, busy s, idle s):")
    for name, st in report["stages"].items():
        print(f"    {name:8s} {st.get('rows', 0):6d} rows {st.get('busy_s', 0):8.1f} busy {st.get('idle_s', 0):8.1f} idle  ({st['actors']} actor(s))")
    print(f"  whole job / slowest stage alone = {pipe_rate / stage_rate:.2f}; model stages / slowest stage alone = {n_clips / model_wall / stage_rate:.2f}"
          f"   ({n} model actor(s) on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
