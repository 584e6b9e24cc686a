"""Fold human verdicts into the mined pairs and write the final pairs.

    python jobs/form_pairs.py --out DIR --verdicts FILE

FILE is a Label Studio JSON export of the tasks in DIR/review/tasks.json, or JSON Lines records as in
DIR/review/records.jsonl with "verdict" filled in (Same / Different / Unsure). Writes DIR/final_pairs/.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reid_ray.review.verdicts import VerdictFileError, form_final_pairs  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="the --out of generate_pairs")
    p.add_argument("--verdicts", required=True, help="Label Studio export (JSON) or records (JSON Lines)")
    args = p.parse_args(argv)
    try:
        summary = form_final_pairs(args.out, args.verdicts)
    except VerdictFileError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    if summary["conflicts"]:
        print(f"{summary['conflicts']} pair(s) need adjudication: {Path(args.out) / 'final_pairs/conflicts.jsonl'}")
    if summary["unknown_verdicts"]:
        print(f"{summary['unknown_verdicts']} verdict(s) name unknown pairs: {Path(args.out) / 'final_pairs/unknown_verdicts.jsonl'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
