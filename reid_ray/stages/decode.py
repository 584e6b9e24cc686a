"""Stage 1: decode a clip pair's frames in a CPU actor, downscaled to ``sampling.max_side_px``, so the model
actors get small frames through the object store and never wait on a decoder.

One row per clip pair in, the same row out with its frames: every frame the segment stage tracks on (both
clips at ``track_step_s``, plus the sampled frames) and, for a bridged clip pair, every frame across the gap.
A clip pair whose video cannot be read comes out with ``error_type`` set and no frames; the segment stage
records it, and the next run tries it again."""
from __future__ import annotations

import traceback

import numpy as np

from reid_ray.config import PairsJobConfig
from reid_ray.pairs.frames import downscale, frames_to_decode, pack_frames
from reid_ray.pipeline import RowStage, StageClock
from reid_ray.schemas import CLIP_PAIR_FIELDS
from reid_ray.storage import out_root
from reid_ray.video.decode import VideoDecodeError, local_video, probe, read_frames

FRAME_FIELDS = ("frames", "frame_indices", "frame_height", "frame_width", "scale", "error_type", "message")
DECODED_FIELDS = CLIP_PAIR_FIELDS + FRAME_FIELDS


class DecodeClipPairs(RowStage):
    """One clip pair in, the same row with its frames out (CPU actors)."""

    fields = DECODED_FIELDS

    def __init__(self, cfg_json: str, out_dir: str) -> None:
        self.cfg = PairsJobConfig.model_validate_json(cfg_json)
        self.clock = StageClock("decode", out_root(out_dir, self.cfg.sources.s3_endpoint_url))

    def process(self, clip_pair: dict) -> dict:
        row = {**{k: clip_pair[k] for k in CLIP_PAIR_FIELDS}, "frames": b"", "frame_indices": b"", "frame_height": 0,
               "frame_width": 0, "scale": 1.0, "error_type": "", "message": ""}
        wanted = sorted({i for indices in frames_to_decode(clip_pair, self.cfg).values() for i in indices})
        try:
            if self.cfg.segmenter.backend == "bench_ground_truth":  # benchmarks only: placeholders, no pixel decoded
                from reid_ray.models.bench_ground_truth import placeholder_frames

                with local_video(clip_pair["uri"], self.cfg.sources) as local:
                    info = probe(local)
                return {**row, **placeholder_frames(clip_pair["video_id"], wanted, info.width, info.height, info.fps)}
            with local_video(clip_pair["uri"], self.cfg.sources) as local:
                frames = read_frames(local, wanted)
            small = [downscale(f, self.cfg.sampling.max_side_px) for f in frames]
        except VideoDecodeError as err:
            return {**row, "error_type": "decode", "message": str(err)}
        except Exception as err:  # one unreadable clip pair must not end the job: the segment stage records it
            return {**row, "error_type": type(err).__name__, "message": f"{err}\n{traceback.format_exc(limit=3)}"}
        h, w = small[0][0].shape[:2]
        return {**row, "frames": pack_frames([f for f, _ in small]), "frame_indices": np.asarray(wanted, np.int64).tobytes(),
                "frame_height": h, "frame_width": w, "scale": small[0][1]}
