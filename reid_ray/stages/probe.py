"""Stage 0: probe each video (fps, frame count; shots when the clip selection needs them) and choose its clip
pairs. Emits two clip rows per clip pair for the segment stage; a video that cannot be used becomes an error
record under ``errors/`` and emits nothing."""
from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from reid_ray.config import PairsJobConfig
from reid_ray.io import clip_pairs_path, errors_path, write_table_atomic
from reid_ray.schemas import CLIP_PAIR, ERROR, error_row, table_from_rows
from reid_ray.stages.clip_pairs import ClipSelectionError, select_clip_pairs
from reid_ray.stages.segment import clip_rows
from reid_ray.video.decode import VideoDecodeError, local_video, probe

CLIP_FIELDS = ("clip_pair_id", "side", "video_id", "uri", "license", "fps", "start_frame", "end_frame", "pair_b_start_frame", "pair_b_end_frame")


def rows_of(batch: dict) -> list[dict]:
    n = len(next(iter(batch.values()))) if batch else 0
    return [{k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in batch.items()} for i in range(n)]


class ProbeStage:
    def __init__(self, cfg_json: str, out_dir: str) -> None:
        self.cfg = PairsJobConfig.model_validate_json(cfg_json)
        self.out = Path(out_dir)
        self.shot_detector = None
        if self.cfg.clip_pairs.shot_constraint != "any":
            from reid_ray.models.transnet import TransNetShotDetector

            self.shot_detector = TransNetShotDetector()

    def __call__(self, batch: dict) -> dict[str, list]:
        clips: list[dict] = []
        for video in rows_of(batch):
            clips += [c for cp in self.clip_pairs(video) for c in clip_rows(cp)]
        return {k: [c[k] for c in clips] for k in CLIP_FIELDS}

    def clip_pairs(self, video: dict) -> list[dict]:
        path = clip_pairs_path(self.out, video["video_id"])
        err_path = errors_path(self.out, f"probe__{video['video_id']}")
        if path.exists():  # chosen by an earlier run of this config: keep the same clips
            return pq.read_table(path).to_pylist()
        try:
            with local_video(video["uri"], self.cfg.sources) as local:
                info = probe(local)
                shots = self.shot_detector.shots(local) if self.shot_detector else None
            rows = select_clip_pairs(video, info.fps, info.n_frames, self.cfg.clip_pairs, shots)
        except (VideoDecodeError, ClipSelectionError) as err:
            kind = "decode" if isinstance(err, VideoDecodeError) else "clip_selection"
            write_table_atomic(table_from_rows([error_row("probe", str(err), video_id=video["video_id"], uri=video["uri"], error_type=kind)], ERROR), err_path)
            return []
        except Exception as err:  # anything else about one video must not stop the corpus
            write_table_atomic(table_from_rows([error_row("probe", repr(err), video_id=video["video_id"], uri=video["uri"], error_type=type(err).__name__)], ERROR), err_path)
            return []
        err_path.unlink(missing_ok=True)
        write_table_atomic(table_from_rows(rows, CLIP_PAIR), path)
        return rows


