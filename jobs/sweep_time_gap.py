"""Run the pair-mining job once per time gap and summarise the curriculum (pairs and similarity per gap).

    python jobs/sweep_time_gap.py --gaps 1,5,15,60 --config configs/local.yaml --videos PATH --out DIR
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generate_pairs import default_videos  # noqa: E402

from reid_ray.config import CONFIG_ERROR_EXIT_CODE, ConfigError, load_config_or_exit  # noqa: E402
from reid_ray.run_state import INTERRUPTED, INTERRUPTED_EXIT_CODE, check_out_dir  # noqa: E402
from reid_ray.sweep import sweep_time_gaps  # noqa: E402
from reid_ray.video.sources import SourceError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gaps", default="1,5,15,60", help="comma-separated gaps in seconds")
    p.add_argument("--config", default=str(ROOT / "configs" / "local.yaml"))
    p.add_argument("--videos", default=None)
    p.add_argument("--out", default="runs/sweep")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    try:
        gaps = [float(g) for g in args.gaps.split(",") if g.strip()]
        if not all(math.isfinite(g) and g >= 0 for g in gaps):
            raise ValueError
    except ValueError:
        print(f"error: --gaps must be finite numbers >= 0 separated by commas, got {args.gaps!r}", file=sys.stderr)
        return CONFIG_ERROR_EXIT_CODE
    cfg = load_config_or_exit(args.config, args.set)
    out = Path(args.out)
    try:
        check_out_dir(out)  # before the default input is generated into it
        summary = sweep_time_gaps(cfg, args.videos or default_videos(out), out, gaps)
    except (ConfigError, SourceError) as err:
        print(f"error: {err}", file=sys.stderr)
        return CONFIG_ERROR_EXIT_CODE
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    for g, s in summary["per_gap"].items():
        print(f"gap {g:>6} s: {s['n_pairs']:5d} pairs, median match similarity {s['median_match_similarity']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
