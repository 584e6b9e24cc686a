"""Re-identify people across a whole video: shots, tracklets, constrained clustering, one id per person.

    python jobs/reid_videos.py --videos PATH_OR_S3 --out DIR [--detections DIR] [--config configs/reid_local.yaml]
    python jobs/reid_videos.py --videos clip.mpg --out runs/reid --set sources.default_license=CAVIAR-research
    python jobs/reid_videos.py --videos DIR --out runs/reid --formats mot,coco_vis,yolo,cvat

``--detections DIR`` takes persons from ``DIR/<video_id>.txt`` (MOTChallenge public detections) instead of
the segmenter. ``--formats`` chooses the identity files (``outputs.track_formats``, default mot: identities.txt;
coco_vis, yolo, cvat: reid_ray.tracking.exports). Outputs per video under ``OUT/<video_id>/``. An id that is no
plain file name (too long, other characters, a name of the job's own files) is replaced in both paths by
``reid_ray.names.safe_name(id)``; reruns skip finished videos and refuse another configuration. Exit codes: 2 bad
config or input, 1 no video has results (all refused or failed; the reasons are printed), 130 interrupted (rerun
with the same --out).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout or a Ray working_dir

from reid_ray.cli import NO_RESULTS_EXIT_CODE, add_config, add_out, add_set, add_videos, fail, job_parser, run_job  # noqa: E402
from reid_ray.config import ReidJobConfig, load_config_or_exit  # noqa: E402
from reid_ray.reid_job import run_reid_job  # noqa: E402
from reid_ray.tracking.exports import TRACK_FORMATS  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = job_parser(__doc__)
    add_config(p, "reid_local.yaml")
    add_videos(p)
    add_out(p, "runs/reid")
    p.add_argument("--detections", default=None, help="folder of MOTChallenge public detections <video_id>.txt")
    p.add_argument("--formats", default=None, metavar="F1,F2", help=f"identity files to write, of {','.join(TRACK_FORMATS)} "
                   "(overrides the profile's outputs.track_formats)")
    add_set(p, "clustering.threshold=0.2")
    return p.parse_args(argv)


def overrides(args: argparse.Namespace) -> list[str]:
    """--set items, then --formats as the override of outputs.track_formats (validated with the config)."""
    if args.formats is None:
        return list(args.set)
    return [*args.set, f"outputs.track_formats={json.dumps([f.strip() for f in args.formats.split(',') if f.strip()])}"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_config_or_exit(args.config, overrides(args), ReidJobConfig)

    def work() -> int:
        report = run_reid_job(cfg, args.videos, Path(args.out), args.detections)
        return fail(f"no results: {report['failure']}", NO_RESULTS_EXIT_CODE) if report["failure"] else 0

    return run_job(work)


if __name__ == "__main__":
    raise SystemExit(main())
