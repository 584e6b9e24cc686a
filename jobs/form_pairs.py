"""Fold human verdicts into the mined pairs and write the final pairs.

    python jobs/form_pairs.py --out DIR --verdicts FILE

FILE is a Label Studio JSON export of the tasks in DIR/review/tasks.json, or JSON Lines records as in
DIR/review/records.jsonl with "verdict" filled in (Same / Different / Unsure, or yes / no).
Writes DIR/final_pairs/{pairs.parquet, conflicts.jsonl, unknown_verdicts.jsonl, summary.json}.
Exit code 2: a malformed verdict file or no DIR/pairs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from reid_ray.review.verdicts import ReviewInputError, form_final_pairs

INPUT_ERROR_EXIT_CODE = 2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="the --out of generate_pairs (holds pairs/)")
    p.add_argument("--verdicts", required=True, type=Path, help="Label Studio export (JSON) or records (JSON Lines)")
    args = p.parse_args(argv)
    try:
        s = form_final_pairs(args.out, args.verdicts)
    except ReviewInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return INPUT_ERROR_EXIT_CODE
    report(s, args.out / "final_pairs")
    return 0


def report(s: dict, dest: Path) -> None:
    labels = ", ".join(f"{k} {n}" for k, n in s["by_label"].items() if n)
    print(f"{s['pairs']} pairs ({labels}); {s['decided_by_humans']} decided by humans from {s['verdicts_read']} verdicts")
    print(f"still pending: {s['still_pending']} ({s['conflicts']} conflicts, {s['pending_without_verdict']} without a verdict)")
    if s["conflicts"]:
        print(f"adjudicate: {dest / 'conflicts.jsonl'}")
    if s["unknown_verdicts"]:
        print(f"{s['unknown_verdicts']} verdict(s) name unknown pairs: {dest / 'unknown_verdicts.jsonl'}")
    if s["verdicts_on_auto_pairs"]:
        print(f"{s['verdicts_on_auto_pairs']} pair(s) with verdicts were auto-decided and kept as they are")
    print(f"wrote {dest / 'pairs.parquet'} and {dest / 'summary.json'}")


if __name__ == "__main__":
    raise SystemExit(main())
