"""Mine identity pairs from licensed video.

    python jobs/generate_pairs.py                      # embedded default: CPU profile, generated footage
    python jobs/generate_pairs.py --config configs/local.yaml --videos PATH_OR_S3 --out DIR [--time-gap 10]
    ray job submit --working-dir . -- python jobs/generate_pairs.py ...
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout or a Ray working_dir

from reid_ray.cli import add_config, add_out, add_set, add_videos, job_parser, run_job  # noqa: E402
from reid_ray.config import load_config_or_exit  # noqa: E402
from reid_ray.pairs_job import JobFailed, run_pairs_job  # noqa: E402
from reid_ray.run_state import check_out_dir  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = job_parser(__doc__)
    add_config(p, "local.yaml")
    add_videos(p, generated_default=True)
    add_out(p, "runs/pairs")
    p.add_argument("--time-gap", default=None, help="gap between clips in seconds: 10, or a range 5:15")
    add_set(p, "proposal.accept_threshold=0.9")
    return p.parse_args(argv)


def overrides_from(args: argparse.Namespace) -> list[str]:
    extra = list(args.set)
    if args.time_gap is not None:
        lo, _, hi = args.time_gap.partition(":")
        extra.append(f"clip_pairs.time_gap_s=[{lo}, {hi}]" if hi else f"clip_pairs.time_gap_s={lo}")
    return extra


def default_videos(out: str) -> str:
    """The embedded default input: a small synthetic corpus with exact ground truth, generated once (beside a local
    --out; in the local cache for an s3:// one)."""
    from reid_ray.video.synthetic import generate_corpus

    folder = Path.home() / ".cache" / "reid_ray" / "default_input" if out.startswith("s3://") else Path(out) / "input"
    manifest = folder / "manifest.csv"
    if not manifest.exists():
        generate_corpus(folder, n_videos=2, seed=0)
    return str(manifest)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_config_or_exit(args.config, overrides_from(args))
    out = args.out  # a local folder or s3://bucket/prefix (reid_ray.storage)

    def work() -> int:
        if not out.startswith("s3://"):
            check_out_dir(Path(out))  # before the default input is generated into it
        run_pairs_job(cfg, args.videos or default_videos(out), out)
        return 0

    return run_job(work, no_results=(JobFailed,))


if __name__ == "__main__":
    raise SystemExit(main())
