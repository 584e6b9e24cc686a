"""Run the pair-mining job once per time gap and summarise the curriculum (pairs and similarity per gap).

    python jobs/sweep_time_gap.py --gaps 1,5,15,60 --config configs/local.yaml --videos PATH --out DIR
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generate_pairs import default_videos  # noqa: E402

from reid_ray.cli import BAD_INPUT_EXIT_CODE, add_config, add_out, add_set, add_videos, fail, job_parser, run_job  # noqa: E402
from reid_ray.config import ConfigError, load_config_or_exit  # noqa: E402
from reid_ray.pairs_job import JobFailed  # noqa: E402
from reid_ray.run_state import check_out_dir  # noqa: E402
from reid_ray.sweep import sweep_time_gaps  # noqa: E402
from reid_ray.video.sources import SourceError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = job_parser(__doc__)
    p.add_argument("--gaps", default="1,5,15,60", help="comma-separated gaps in seconds")
    add_config(p, "local.yaml")
    add_videos(p, generated_default=True)
    add_out(p, "runs/sweep")
    add_set(p)
    args = p.parse_args(argv)
    try:
        gaps = [float(g) for g in args.gaps.split(",") if g.strip()]
        if not all(math.isfinite(g) and g >= 0 for g in gaps):
            raise ValueError
    except ValueError:
        return fail(f"--gaps must be finite numbers >= 0 separated by commas, got {args.gaps!r}", BAD_INPUT_EXIT_CODE)
    cfg = load_config_or_exit(args.config, args.set)
    out = Path(args.out)

    def work() -> int:
        check_out_dir(out)  # before the default input is generated into it
        summary = sweep_time_gaps(cfg, args.videos or default_videos(out), out, gaps)
        for g, s in summary["per_gap"].items():
            print(f"gap {g:>6} s: {s['n_pairs']:5d} pairs, median match similarity {s['median_match_similarity']}")
        return 0

    # JobFailed: a gap's run has nothing usable (every source refused, no pairs): exit 1 with why, as generate_pairs
    return run_job(work, bad_input=(ConfigError, SourceError), no_results=(JobFailed,))


if __name__ == "__main__":
    raise SystemExit(main())
