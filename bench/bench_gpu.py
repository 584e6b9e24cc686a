"""Speed of the GPU profiles' models at their sizes (prints figures; not a test): SAM3 video tracking per frame and
per clip (one session, prompt "person") and DINOv3 ViT-B/16 and ViT-L/16 patch embedding per frame, at the
profiles' resolutions, with peak accelerator memory and the model's busy share (model seconds / wall seconds of
the loop that feeds it frames). Random weights: the speed of a network does not depend on its weights, its
quality does (never read a quality figure off this).

On a machine with CUDA it builds the real architectures (SAM3's default config, DINOv3 ViT-B and ViT-L). Without
one it runs TINY models on the CPU (the test suite's builders) and says so: those figures time the code path,
not the models.

    python bench/bench_gpu.py [--frames 32] [--side 1008] [--people 6] [--device cuda]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tiny builders (CPU fallback)

import numpy as np  # noqa: E402


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_mib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None


def _reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def real_sam3(folder: Path, side: int) -> str:
    """SAM3 at its real size (the config's defaults), random weights, with the tiny in-memory tokenizer."""
    from tiny_models import _tiny_clip_tokenizer
    from transformers import Sam2VideoVideoProcessor, Sam3ImageProcessor, Sam3VideoConfig, Sam3VideoModel, Sam3VideoProcessor

    tokenizer, _ = _tiny_clip_tokenizer()  # its ids are valid rows of the real vocabulary
    Sam3VideoModel(Sam3VideoConfig()).save_pretrained(folder)
    size = {"height": side, "width": side}
    Sam3VideoProcessor(image_processor=Sam3ImageProcessor(size=size), video_processor=Sam2VideoVideoProcessor(size=size),
                       tokenizer=tokenizer, target_size=side).save_pretrained(folder)
    return str(folder)


def real_dinov3(folder: Path, large: bool) -> str:
    from transformers import DINOv3ViTConfig, DINOv3ViTImageProcessor, DINOv3ViTModel

    width, layers, heads = (1024, 24, 16) if large else (768, 12, 12)
    DINOv3ViTModel(DINOv3ViTConfig(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                                   num_attention_heads=heads, patch_size=16, num_register_tokens=4)).save_pretrained(folder)
    DINOv3ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(folder)
    return str(folder)


def frames_of(n: int, side: int, people: int, seed: int = 0) -> list[np.ndarray]:
    """A synthetic clip (the generator's people) at ``side`` px on its longer side."""
    import cv2

    from reid_ray.video.decode import iter_frames
    from reid_ray.video.synthetic import SyntheticSpec, generate

    with tempfile.TemporaryDirectory() as tmp:
        video = generate(SyntheticSpec(video_id="bench", seed=seed, n_frames=n, n_people=people, occluders=False), tmp)
        frames = [f for _, f in iter_frames(video.video_path)]
    s = side / max(frames[0].shape[:2])
    return [cv2.resize(f, (round(f.shape[1] * s), round(f.shape[0] * s)), interpolation=cv2.INTER_AREA) for f in frames]


def bench_sam3(model_dir: str, frames: list[np.ndarray], device: str, repeats: int) -> dict:
    from reid_ray.models.sam3 import Sam3Segmenter

    seg = Sam3Segmenter(model=model_dir, categories={"person": ["person"]}, score_threshold=0.0, device=device)
    seg.track(frames[:2])  # warm-up: kernels, allocator
    _reset_peak(device)
    best, objects = float("inf"), 0
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        out = seg.track(frames)
        _sync(device)
        best = min(best, time.perf_counter() - t)
        objects = int(np.mean([len(o) for o in out]))
    return {"clip_s": best, "per_frame_ms": 1000 * best / len(frames), "objects_per_frame": objects, "peak_mib": _peak_mib(device)}


def bench_dino(model_dir: str, frames: list[np.ndarray], people: int, device: str) -> dict:
    """Patch sets of ``people`` boxes per frame (the profile's 224 x 112 crops); busy share: the embedder's calls
    over the loop's wall time (the rest: making masks, the loop itself)."""
    from reid_ray.models.dino import DinoPatchEmbedder
    from reid_ray.records import Instances

    emb = DinoPatchEmbedder(model=model_dir, crop_height=224, crop_width=112, device=device)
    h, w = frames[0].shape[:2]
    xs = np.linspace(0, w - w // (people + 1), people)
    boxes = np.stack([xs, np.full(people, h * 0.2), xs + w / (people + 1), np.full(people, h * 0.95)], 1).astype(np.float32)
    boxed = Instances.from_arrays(boxes, [0.9] * people, ["person"] * people)
    inst = boxed.with_masks((h, w), "box")
    emb.patch_sets(frames[0], inst)  # warm-up
    _reset_peak(device)
    busy = 0.0
    t0 = time.perf_counter()
    for frame in frames:
        inst = boxed.with_masks(frame.shape[:2], "box")  # the job makes each frame's masks before embedding
        t = time.perf_counter()
        emb.patch_sets(frame, inst)
        _sync(device)
        busy += time.perf_counter() - t
    wall = time.perf_counter() - t0
    return {"per_frame_ms": 1000 * wall / len(frames), "per_crop_ms": 1000 * wall / len(frames) / people,
            "busy_share": busy / wall, "peak_mib": _peak_mib(device)}


def main() -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--frames", type=int, default=32, help="frames per SAM3 clip (one session)")
    ap.add_argument("--side", type=int, default=1008, help="SAM3's input side (the profiles' tracking.max_side_px)")
    ap.add_argument("--people", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    tiny = not args.device.startswith("cuda")
    if tiny:
        from tiny_models import SAM3_IMAGE_SIZE

        args.side, args.frames = SAM3_IMAGE_SIZE, min(args.frames, 8)
        print(f"NO ACCELERATOR: TINY random models on the CPU ({args.frames} frames at {args.side} px). These figures time "
              "the code path, not SAM3 or DINOv3; run on a GPU node for the real ones.")
    else:
        print(f"{torch.cuda.get_device_name()}: real-size architectures, random weights, {args.frames} frames at {args.side} px")
    frames = frames_of(args.frames, args.side, args.people)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if tiny:
            from tiny_models import build_tiny_dinov3, build_tiny_sam3

            sam3 = build_tiny_sam3(tmp / "sam3")
            dinos = {"DINOv3 tiny": build_tiny_dinov3(tmp / "dino")}
        else:
            sam3 = real_sam3(tmp / "sam3", args.side)
            dinos = {"DINOv3 ViT-B/16": real_dinov3(tmp / "dino_b", False), "DINOv3 ViT-L/16": real_dinov3(tmp / "dino_l", True)}
        r = bench_sam3(sam3, frames, args.device, args.repeats)
        mem = f", peak {r['peak_mib']:,.0f} MiB" if r["peak_mib"] is not None else ""
        print(f"SAM3 video tracking: {args.frames}-frame clip {r['clip_s']:.2f} s = {r['per_frame_ms']:.0f} ms/frame, "
              f"{r['objects_per_frame']} objects/frame tracked (random weights: the count drives the tracker's cost){mem}")
        for name, path in dinos.items():
            d = bench_dino(path, frames, args.people, args.device)
            mem = f", peak {d['peak_mib']:,.0f} MiB" if d["peak_mib"] is not None else ""
            print(f"{name}: {args.people} crops 224x112 per frame, {d['per_frame_ms']:.1f} ms/frame = {d['per_crop_ms']:.1f} ms/crop, "
                  f"model busy {d['busy_share']:.0%} of the loop{mem}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
