"""Time and peak memory of the consumers of every mined pair: form_pairs and the review writer.

    python bench/bench_form_pairs.py [--work DIR] [--pairs 1000000] [--files 100] [--verdicts 300000]

Builds DIR/pairs/*.parquet (PAIR rows with ids as the job makes them, ~10 % pending_review), a Label Studio JSON
export and a JSON Lines records export of the verdicts (up to three annotators on most pending pairs, some on auto
pairs, some on pairs nobody mined, a few cancelled), then runs each consumer in its own process and prints wall
seconds and that process's peak RSS (os.wait4, so each figure is one child's). The review writer runs twice:
fresh, then a rerun over its own files, which must leave them byte-identical.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reid_ray.schemas import PAIR  # noqa: E402

LABELS = np.array(["identical", "same_category_different_instance", "unrelated", "pending_review"])
LABEL_SHARE = [0.55, 0.25, 0.10, 0.10]
CATEGORIES = np.array(["person", "face", "product"])
VOTES = np.array(["Same", "Different", "Unsure"])


def hex_ids(rng: np.random.Generator, n: int) -> list[str]:
    """16 hex characters, like reid_ray.pairs.proposal.pair_id (a truncated SHA-1)."""
    h = rng.bytes(8 * n).hex()
    return [h[i : i + 16] for i in range(0, 16 * n, 16)]


def pair_table(rng: np.random.Generator, video: str, n: int) -> pa.Table:
    label = LABELS[rng.choice(4, n, p=LABEL_SHARE)]
    cat = CATEGORIES[rng.integers(0, 3, n)]
    other = CATEGORIES[(np.searchsorted(CATEGORIES, cat) + rng.integers(1, 3, n)) % 3]
    category = np.where(label == "unrelated", np.char.add(np.char.add(cat, "|"), other), cat)
    a0, b0 = rng.integers(0, 90_000, n), rng.integers(90_000, 180_000, n)
    clip = [f"{video}__{a:07d}_{b:07d}" for a, b in zip(a0, b0)]
    cols = {
        "pair_id": hex_ids(rng, n),
        "label": label,
        "confidence": rng.random(n, dtype=np.float32),
        "verified_by": np.where(label == "pending_review", "human", "auto"),
        "gap_s": rng.choice([5.0, 10.0, 30.0, 60.0], n),
        "category": category,
        "license": np.full(n, "CC-BY-4.0"),
        "clip_pair_id": clip,
        "similarity": rng.random(n, dtype=np.float32),
        "kind": np.where(label == "unrelated", "unrelated", "match"),
    }
    for s, f0 in (("a", a0), ("b", b0)):
        xy = rng.uniform(0, 1200, (n, 2)).astype(np.float32)
        box = np.concatenate([xy, xy + rng.uniform(10, 200, (n, 2)).astype(np.float32)], axis=1)
        frame = f0 + rng.integers(0, 250, n)
        track = rng.integers(0, 40, n)
        cols |= {
            f"{s}_video_id": np.full(n, video),
            f"{s}_frame": frame,
            f"{s}_t_s": frame / 25.0,
            f"{s}_bbox": pa.FixedSizeListArray.from_arrays(pa.array(box.ravel()), 4),
            f"{s}_candidate_id": [f"{c}__{s}__{f:07d}_{t:03d}" for c, f, t in zip(clip, frame, track)],
            f"{s}_track_id": track,
        }
    return pa.table({k: pa.array(v) if not isinstance(v, pa.Array) else v for k, v in cols.items()}).cast(PAIR)


def build_pairs(work: Path, n_pairs: int, n_files: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Writes the files; returns the pending and the auto pair ids (ids only, for the verdicts)."""
    (work / "pairs").mkdir(parents=True, exist_ok=True)
    pending, auto = [], []
    per = n_pairs // n_files
    for v in range(n_files):
        t = pair_table(rng, f"video_{v:04d}", per + (n_pairs % n_files if v == n_files - 1 else 0))
        pq.write_table(t, work / "pairs" / f"video_{v:04d}.parquet")
        is_pending = np.asarray(t.column("label").to_numpy(zero_copy_only=False) == "pending_review")
        ids = np.asarray(t.column("pair_id").to_pylist(), dtype=object)
        pending += ids[is_pending].tolist()
        auto += ids[~is_pending][:200].tolist()
    return pending, auto


def build_votes(pending: list[str], auto: list[str], n_verdicts: int, rng: np.random.Generator) -> list[tuple[str, str, int]]:
    """(pair_id, verdict, annotator id): 3 % on auto pairs, 2 % on unknown ids, the rest up to 3 per pending pair."""
    n_auto, n_unknown = int(n_verdicts * 0.03), int(n_verdicts * 0.02)
    n_pending = n_verdicts - n_auto - n_unknown
    per_pair = min(3, max(1, -(-n_pending // max(len(pending), 1))))
    votes = []
    for pid in pending:
        for a in range(per_pair):
            if len(votes) == n_pending:
                break
            votes.append((pid, VOTES[rng.choice(3, p=[0.5, 0.4, 0.1])], int(rng.integers(1, 40)) * 10 + a))
    targets = [auto[i % len(auto)] for i in range(n_auto)] + hex_ids(rng, n_unknown)
    votes += [(pid, VOTES[rng.integers(0, 2)], int(rng.integers(1, 40)) * 10) for pid in targets]
    return votes


def write_exports(work: Path, votes: list[tuple[str, str, int]], rng: np.random.Generator) -> tuple[Path, Path]:
    by_pair: dict[str, list] = {}
    for pid, verdict, who in votes:
        by_pair.setdefault(pid, []).append((verdict, who))
    stamp = "2026-03-02T10:14:07.512301Z"
    ls_path, jl_path = work / "export_label_studio.json", work / "export_records.jsonl"
    with ls_path.open("w") as f:
        f.write("[")
        for i, (pid, answers) in enumerate(by_pair.items()):
            anns = [_annotation(i, j, verdict, who, stamp) for j, (verdict, who) in enumerate(answers)]
            if rng.random() < 0.01:
                anns.append(_annotation(i, len(anns), "Same", 999, stamp) | {"was_cancelled": True, "result": []})
            task = {"id": i + 1, "annotations": anns, "drafts": [], "predictions": [],
                    "data": {"image": f"s3://bucket/review/{pid}.png", "pair_id": pid, "category": "person",
                             "confidence": 0.512, "gap_s": 10.0},
                    "meta": {}, "created_at": stamp, "updated_at": stamp, "inner_id": i + 1, "total_annotations": len(anns),
                    "cancelled_annotations": 0, "total_predictions": 0, "comment_count": 0, "unresolved_comment_count": 0,
                    "last_comment_updated_at": None, "project": 7, "updated_by": answers[-1][1], "file_upload": 3,
                    "comment_authors": []}
            f.write(("," if i else "") + "\n" + json.dumps(task))
        f.write("\n]\n")
    with jl_path.open("w") as f:
        for pid, verdict, who in votes:
            f.write(json.dumps({"project_title": "reid-ray review", "pair_id": pid, "status": "done", "verdict": verdict,
                                "annotator": f"annotator{who}@example.org", "image": f"{pid}.png"}) + "\n")
    return ls_path, jl_path


def _annotation(task: int, j: int, verdict: str, who: int, stamp: str) -> dict:
    return {"id": task * 4 + j + 1, "completed_by": who, "result": [
        {"value": {"choices": [verdict]}, "id": hashlib.md5(f"{task}-{j}".encode()).hexdigest()[:10],
         "from_name": "verdict", "to_name": "packet", "type": "choices", "origin": "manual"}],
        "was_cancelled": False, "ground_truth": False, "created_at": stamp, "updated_at": stamp, "draft_created_at": None,
        "lead_time": 4.113, "prediction": {}, "result_count": 1, "unique_id": f"u-{task}-{j}", "import_id": None,
        "last_action": None, "bulk_created": False, "task": task + 1, "project": 7, "updated_by": who,
        "parent_prediction": None, "parent_annotation": None, "last_created_by": None}


REVIEW_CHILD = """
import sys
from reid_ray.review.label_studio import pending_pairs, write_review_outputs
print(write_review_outputs(pending_pairs(sys.argv[1] + "/pairs"), sys.argv[1] + "/review", "reid-ray review", "2026-03-01T00:00:00Z"))
"""


def measure(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) of this one child, its stdout."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # reaps it: the usage is this child's alone
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err.read()}")
        return seconds, usage.ru_maxrss / 1024, out.read()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, help="a folder for the inputs and outputs (default: a temp folder, removed)")
    p.add_argument("--pairs", type=int, default=1_000_000)
    p.add_argument("--files", type=int, default=100)
    p.add_argument("--verdicts", type=int, default=300_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="bench_form_pairs_")
    work = args.work or Path(tmp.name)
    try:
        run(work, args)
    finally:
        if tmp:
            tmp.cleanup()


def run(work: Path, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    pending, auto = build_pairs(work, args.pairs, args.files, rng)
    votes = build_votes(pending, auto, args.verdicts, rng)
    ls_path, jl_path = write_exports(work, votes, rng)
    print(f"inputs: {args.pairs} pairs in {args.files} files ({len(pending)} pending), {len(votes)} verdicts; "
          f"Label Studio export {ls_path.stat().st_size / 2**20:.0f} MiB, records {jl_path.stat().st_size / 2**20:.0f} MiB "
          f"(built in {time.perf_counter() - t0:.0f} s)")
    del pending, auto, votes

    rows = []
    for name, path in (("form_pairs, Label Studio JSON", ls_path), ("form_pairs, JSON Lines records", jl_path)):
        s, mib, _ = measure([sys.executable, "jobs/form_pairs.py", "--out", str(work), "--verdicts", str(path)])
        summary = json.loads((work / "final_pairs/summary.json").read_text())
        rows.append((name, s, mib, f"{summary['pairs']} pairs, {summary['decided_by_humans']} decided by humans, "
                                   f"{summary['conflicts']} conflicts, {summary['unknown_verdicts']} unknown"))
    review = work / "review"
    for name in ("review writer, fresh", "review writer, rerun"):
        before = {f.name: f.read_bytes() for f in review.glob("*")} if review.exists() else None
        s, mib, out = measure([sys.executable, "-c", REVIEW_CHILD, str(work)])
        after = {f.name: f.read_bytes() for f in review.glob("*")}
        note = out.strip() if before is None else f"byte-identical: {before == after}"
        rows.append((name, s, mib, note))
    print(f"{'run':34s} {'seconds':>8s} {'peak MiB':>9s}")
    for name, s, mib, note in rows:
        print(f"{name:34s} {s:8.1f} {mib:9.0f}   {note}")


if __name__ == "__main__":
    main()
