"""Fold human verdicts into the mined pairs and write the final pairs.

    python jobs/form_pairs.py --out DIR --verdicts FILE [FILE ...]

FILE is a Label Studio JSON export of the tasks in DIR/review/tasks.json (and, in a later round, of
DIR/final_pairs/adjudication_tasks.json), or JSON Lines records as in DIR/review/records.jsonl with the answer
filled in (segment1_image_1: yes / no, or verdict: Same / Different / Unsure). Several files read as one set.
An adjudicator's verdict (a task with data.adjudication) decides its pair; otherwise the majority does.

Writes DIR/final_pairs/{pairs.parquet, conflicts.jsonl, adjudication_tasks.json, unknown_verdicts.jsonl,
qa.json, summary.json} and marks the decided records of DIR/review/records.jsonl completed.
QA settings default to the run's own (review.* in its config); the flags below override them.
Exit code 2: a malformed verdict file or no DIR/pairs.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from reid_ray.cli import BAD_INPUT_EXIT_CODE, fail, job_parser  # noqa: E402
from reid_ray.review.verdicts import ADJUDICATION_TASKS_FILE, QA_FILE, ReviewInputError, form_final_pairs, run_review_config  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = job_parser(__doc__)
    p.add_argument("--out", required=True, type=Path, help="the --out of generate_pairs (holds pairs/)")
    p.add_argument("--verdicts", required=True, type=Path, nargs="+",
                   help="Label Studio export(s) (JSON) or records (JSON Lines), read in order")
    p.add_argument("--min-gold-accuracy", type=float, help="annotators below this on gold questions are flagged or dropped")
    p.add_argument("--on-low-accuracy", choices=("flag", "drop"), help="drop: their verdicts are not counted")
    p.add_argument("--target-seconds", type=float, help="the time one verdict should take (QA reports against it)")
    args = p.parse_args(argv)
    try:
        review = run_review_config(args.out)
        overrides = {"min_gold_accuracy": args.min_gold_accuracy, "on_low_accuracy": args.on_low_accuracy,
                     "target_seconds": args.target_seconds}
        review = review.model_copy(update={k: v for k, v in overrides.items() if v is not None})
        s = form_final_pairs(args.out, args.verdicts, review)
    except ReviewInputError as err:
        return fail(err, BAD_INPUT_EXIT_CODE)
    report(s, args.out / "final_pairs")
    return 0


def report(s: dict, dest: Path) -> None:
    labels = ", ".join(f"{k} {n}" for k, n in s["by_label"].items() if n)
    print(f"{s['pairs']} pairs ({labels}); {s['decided_by_humans']} decided by humans "
          f"({s['decided_by_adjudication']} by adjudication) from {s['verdicts_read']} verdicts")
    print(f"still pending: {s['still_pending']} ({s['conflicts']} conflicts, {s['pending_without_verdict']} without a verdict)")
    if s["conflicts"]:
        print(f"adjudicate: import {dest / ADJUDICATION_TASKS_FILE} into Label Studio, then rerun with its export added to --verdicts")
    if s["unknown_verdicts"]:
        print(f"{s['unknown_verdicts']} verdict(s) name unknown pairs: {dest / 'unknown_verdicts.jsonl'}")
    if s["verdicts_on_auto_pairs"]:
        print(f"{s['verdicts_on_auto_pairs']} pair(s) with verdicts were auto-decided and kept as they are "
              f"({s['gold_verdicts']} verdict(s) on gold questions)")
    if s["low_accuracy_annotators"]:
        what = "dropped" if s["verdicts_dropped"] else "flagged"
        print(f"below the gold accuracy bar ({what}): {', '.join(s['low_accuracy_annotators'])}")
    print(f"wrote {dest / 'pairs.parquet'}, {dest / QA_FILE} and {dest / 'summary.json'}")


if __name__ == "__main__":
    raise SystemExit(main())
