"""Stage 0: probe each video (fps, frame count; shots when the clip selection needs them) and choose its clip
pairs. Emits one row per clip pair whose model work is not finished (no ``calibration/<video>/<clip pair>``
marker: new, or failed on an earlier run); a video that cannot be used becomes an error record under
``errors/probe/`` and emits nothing."""
from __future__ import annotations

from reid_ray.config import PairsJobConfig
from reid_ray.io import calibration_samples_path, clip_pairs_path, read_parquet, retire_video, video_errors_path, write_or_remove, write_table_atomic
from reid_ray.pairs.clip_pairs import ClipSelectionError, select_clip_pairs
from reid_ray.pipeline import RowStage, StageClock
from reid_ray.storage import out_root
from reid_ray.schemas import CLIP_PAIR, CLIP_PAIR_FIELDS, ERROR, error_row, table_from_rows
from reid_ray.video.decode import VideoDecodeError, content_fingerprint, local_video, probe
from reid_ray.video.sources import source_key


class ProbeStage(RowStage):
    """One video in, its unfinished clip pairs out (none, or several)."""

    fields = CLIP_PAIR_FIELDS

    def __init__(self, cfg_json: str, out_dir: str) -> None:
        self.cfg = PairsJobConfig.model_validate_json(cfg_json)
        self.out = out_root(out_dir, self.cfg.sources.s3_endpoint_url)
        self.shot_detector = None
        self.clock = StageClock("probe", self.out)
        if self.cfg.clip_pairs.shot_constraint != "any":
            from reid_ray.models.transnet import TransNetShotDetector

            self.shot_detector = TransNetShotDetector()

    def process(self, video: dict) -> list[dict]:
        unfinished = [cp for cp in self.clip_pairs(video) if not calibration_samples_path(self.out, cp["video_id"], cp["clip_pair_id"]).exists()]
        # The job's report counts videos with work from these (the clock's file is written after each batch).
        stats = self.clock.stats
        stats["videos_with_work"] = stats.get("videos_with_work", 0) + bool(unfinished or self.failed)
        stats["clip_pairs_to_do"] = stats.get("clip_pairs_to_do", 0) + len(unfinished)
        return unfinished

    def clip_pairs(self, video: dict) -> list[dict]:
        path = clip_pairs_path(self.out, video["video_id"])
        err_path = video_errors_path(self.out, "probe", video["video_id"])
        self.failed = False
        try:
            video = {**video, "source_key": source_key(video, content_fingerprint(video["uri"], self.cfg.sources))}
            if path.exists():  # chosen by an earlier run of this config: the same clips, if made from the same source
                rows = read_parquet(path).to_pylist()
                if rows and rows[0].get("source_key") == video["source_key"]:
                    return rows
                retire_video(self.out, video["video_id"])  # another file, licence or content under this id
            with local_video(video["uri"], self.cfg.sources) as local:
                info = probe(local)
                shots = self.shot_detector.shots(local) if self.shot_detector else None
            rows = select_clip_pairs(video, info.fps, info.n_frames, self.cfg.clip_pairs, shots)
        except (VideoDecodeError, ClipSelectionError) as err:
            kind = "decode" if isinstance(err, VideoDecodeError) else "clip_selection"
            write_table_atomic(table_from_rows([error_row("probe", str(err), video_id=video["video_id"], uri=video["uri"], error_type=kind)], ERROR), err_path)
            self.failed = True
            return []
        except Exception as err:  # anything else about one video must not stop the corpus
            write_table_atomic(table_from_rows([error_row("probe", repr(err), video_id=video["video_id"], uri=video["uri"], error_type=type(err).__name__)], ERROR), err_path)
            self.failed = True
            return []
        write_or_remove([], ERROR, err_path)
        write_table_atomic(table_from_rows(rows, CLIP_PAIR), path)
        return rows


