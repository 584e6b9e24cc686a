"""Human verdicts back into pairs.

Reads a Label Studio JSON export (or its JSON_MIN flavour) or the review records (JSON Lines) with ``verdict``
filled, resolves several verdicts per pair by majority, lists ties for adjudication, reports verdicts for
pairs nobody mined (never dropped silently) and writes the final pairs under ``DIR/final_pairs/``.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reid_ray.io import atomic_files, atomic_paths, write_json_atomic, write_text_atomic
from reid_ray.review.json_stream import JsonStreamError, iter_json_array
from reid_ray.config import ReviewConfig
from reid_ray.names import packet_file_name
from reid_ray.review.gold import GOLD_FILE, read_gold
from reid_ray.review.label_studio import (
    ANSWER_KEY,
    COMPLETED,
    RECORDS_FILE,
    TASKS_FILE,
    completed_record,
    iter_records,
)
from reid_ray.review.pair_stream import FirstSeen, PairFileError, pair_batches, pair_files
from reid_ray.schemas import LABELS, NOBODY_YET, PAIR, VERIFIED_BY

SAME, DIFFERENT, UNSURE = "Same", "Different", "Unsure"
_WORDS = {"same": SAME, "yes": SAME, "different": DIFFERENT, "no": DIFFERENT, "unsure": UNSURE}
PENDING = "pending_review"


class ReviewInputError(ValueError):
    """An input of the review step that cannot be used; the message says which file and what is wrong."""


class VerdictFileError(ReviewInputError):
    """A malformed verdict file; the message names the file and the line (JSON Lines) or task (JSON)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    pair_id: str
    verdict: str  # Same / Different / Unsure
    annotator: str | None
    source: str  # where it was read, for messages: "file line 3", "file task 2"
    lead_time: float | None = None  # seconds the annotator spent (Label Studio's lead_time), when known
    adjudication: bool = False  # given on an adjudication task: it decides its pair


@dataclass
class VerdictSet:
    path: Path | list[Path]
    verdicts: list[Verdict] = field(default_factory=list)
    cancelled: int = 0  # Label Studio annotations with was_cancelled (skipped tasks)
    unanswered: int = 0  # records whose verdict is still null

    def by_pair(self) -> dict[str, list[Verdict]]:
        """Verdicts per pair; one annotator's later verdict on a pair replaces their earlier one
        (a corrected answer, or the same export read twice, must not count twice). An adjudicator's verdict
        is kept apart from the same person's first-round one."""
        out: dict[str, dict[Any, Verdict]] = {}
        for i, v in enumerate(self.verdicts):
            key = (v.annotator if v.annotator is not None else ("anonymous", i), v.adjudication)
            out.setdefault(v.pair_id, {})[key] = v
        return {pid: list(vs.values()) for pid, vs in out.items()}

    def without(self, annotators: Container[str]) -> VerdictSet:
        """The same set less the verdicts of ``annotators`` (dropped for failing the gold questions)."""
        kept = [v for v in self.verdicts if v.annotator not in annotators]
        return VerdictSet(self.path, kept, self.cancelled, self.unanswered)

    @property
    def votes(self) -> dict[str, list[str]]:
        return {pid: [v.verdict for v in vs] for pid, vs in self.by_pair().items()}


# ---------------------------------------------------------------- reading


def read_verdicts(path: str | Path | Sequence[str | Path]) -> VerdictSet:
    """A Label Studio JSON export (a list) or JSON Lines records; the format is told from the first character.
    Several files (a first round and an adjudication round, several projects) read as one set, in order."""
    if not isinstance(path, (str, Path)):
        sets = [read_verdicts(p) for p in path]
        if not sets:
            raise VerdictFileError("no verdict file given")
        merged = VerdictSet([Path(p) for p in path])
        for vs in sets:
            merged.verdicts += vs.verdicts
            merged.cancelled += vs.cancelled
            merged.unanswered += vs.unanswered
        return merged
    path = Path(path)
    if not path.is_file():
        raise VerdictFileError(f"{path}: no such verdict file")
    try:
        with path.open(encoding="utf-8") as f:
            first = _first_char(f)
            f.seek(0)
            return _read_json_export(path, f) if first == "[" else _read_jsonl(path, f)
    except UnicodeDecodeError as err:
        raise VerdictFileError(f"{path}: not UTF-8 text ({err.reason})") from None


def _first_char(f: TextIO) -> str:
    while chunk := f.read(1 << 16):
        if stripped := chunk.lstrip():
            return stripped[0]
    return ""


def _read_json_export(path: Path, f: TextIO) -> VerdictSet:
    out = VerdictSet(path)
    try:
        for i, task in enumerate(iter_json_array(f)):
            where = f"{path} task {i}"
            if not isinstance(task, dict):
                raise VerdictFileError(f"{where}: a task must be a JSON object, got {type(task).__name__}")
            if "data" in task:
                _add_task(out, task, where)
            else:  # JSON_MIN export: data keys and control values flattened into the task
                _add_record(out, task, where)
    except JsonStreamError as err:
        raise VerdictFileError(f"{path} line {err.lineno}: not valid JSON ({err.msg})") from None
    return out


def _add_task(out: VerdictSet, task: dict, where: str) -> None:
    pair_id = _pair_id(task.get("data"), where, "data.pair_id")
    adjudication = bool(task["data"].get("adjudication"))
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        raise VerdictFileError(f"{where}: 'annotations' must be a list")
    for j, ann in enumerate(annotations):
        here = f"{where} annotation {j}"
        if not isinstance(ann, dict):
            raise VerdictFileError(f"{here}: an annotation must be a JSON object")
        if ann.get("was_cancelled"):
            out.cancelled += 1
            continue
        choice = _choice_of(ann.get("result") or [], here)
        if choice is not None:
            out.verdicts.append(Verdict(pair_id, _normalise(choice, here), _annotator(ann.get("completed_by")), here,
                                        _seconds(ann.get("lead_time")), adjudication))


def _choice_of(results: list, where: str) -> str | None:
    """The 'verdict' choice of one annotation, or None when it has none (e.g. only other controls)."""
    if not isinstance(results, list):
        raise VerdictFileError(f"{where}: 'result' must be a list")
    found = [r for r in results if isinstance(r, dict) and r.get("from_name") == "verdict"]
    if not found:
        return None
    if len(found) > 1:
        raise VerdictFileError(f"{where}: {len(found)} 'verdict' results in one annotation, expected one")
    choices = (found[0].get("value") or {}).get("choices")
    if not isinstance(choices, list) or len(choices) != 1:
        raise VerdictFileError(f"{where}: verdict value.choices must hold exactly one choice, got {choices!r}")
    return choices[0]


def _read_jsonl(path: Path, f: TextIO) -> VerdictSet:
    out = VerdictSet(path)
    for n, line in enumerate(f, start=1):
        if not line.strip():
            continue
        where = f"{path} line {n}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise VerdictFileError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise VerdictFileError(f"{where}: a record must be a JSON object, got {type(record).__name__}")
        _add_record(out, record, where)
    return out


def _add_record(out: VerdictSet, record: dict, where: str) -> None:
    pair_id = _pair_id(record, where, "pair_id")
    key = "verdict" if "verdict" in record else ANSWER_KEY  # a JSON_MIN export, or the seed's review record
    if key not in record:
        raise VerdictFileError(f"{where}: no 'verdict' or '{ANSWER_KEY}' key (use null for a pair not answered yet)")
    if record[key] is None:
        out.unanswered += 1
        return
    out.verdicts.append(Verdict(pair_id, _normalise(record[key], where), _annotator(record.get("annotator")), where,
                                _seconds(record.get("lead_time")), bool(record.get("adjudication"))))


def _pair_id(obj: Any, where: str, name: str) -> str:
    pid = obj.get("pair_id") if isinstance(obj, dict) else None
    if not isinstance(pid, str) or not pid:
        raise VerdictFileError(f"{where}: {name} missing or not a non-empty string")
    return pid


def _normalise(value: Any, where: str) -> str:
    word = _WORDS.get(value.strip().lower()) if isinstance(value, str) else None
    if word is None:
        raise VerdictFileError(f"{where}: verdict {value!r} is not one of Same, Different, Unsure (or yes/no)")
    return word


def _seconds(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _annotator(value: Any) -> str | None:
    if isinstance(value, dict):  # Label Studio may expand completed_by into a user object
        value = value.get("email") or value.get("id")
    # Interned: a few annotators answer thousands of pairs, one string each is enough.
    return None if value is None or value == "" else sys.intern(str(value))


# ---------------------------------------------------------------- resolving


@dataclass
class Resolution:
    decided: dict[str, str]  # pair_id -> Same / Different
    conflicts: list[dict]  # {"pair_id", "votes": {Same, Different, Unsure}, "ballots": [...]}: for adjudication
    unknown: list[dict]  # verdicts naming pairs that are not in the pairs given
    no_verdict: list[str]  # pairs given with no verdict at all


def resolve(verdicts: VerdictSet, pairs: Iterable[Mapping | str]) -> Resolution:
    """Majority of Same vs Different per pair. Unsure is no vote; a tie (all-Unsure included) is a conflict."""
    known = [p if isinstance(p, str) else p["pair_id"] for p in pairs]
    known_set = set(known)
    by_pair = verdicts.by_pair()
    decided, conflicts = tally(by_pair)
    return Resolution(
        {pid: v for pid, v in decided.items() if pid in known_set},
        [c for pid, c in conflicts.items() if pid in known_set],
        _unknown(by_pair, known_set),
        [pid for pid in dict.fromkeys(known) if pid not in by_pair],
    )


def tally(by_pair: dict[str, list[Verdict]]) -> tuple[dict[str, str], dict[str, dict]]:
    """Per pair with verdicts, whether mined or not: the adjudicator's last Same / Different if there is one,
    else the majority (pair_id -> Same / Different), or, on a tie, its conflict entry
    (pair_id -> {"pair_id", "votes", "ballots"})."""
    decided, conflicts = {}, {}
    for pid, vs in by_pair.items():
        ruled = [v.verdict for v in vs if v.adjudication and v.verdict != UNSURE]
        if ruled:
            decided[pid] = ruled[-1]
            continue
        counts = Counter(v.verdict for v in vs if not v.adjudication)
        if counts[SAME] == counts[DIFFERENT]:
            conflicts[pid] = {"pair_id": pid, "votes": {k: counts[k] for k in (SAME, DIFFERENT, UNSURE)}, "ballots": _ballots(vs)}
        else:
            decided[pid] = SAME if counts[SAME] > counts[DIFFERENT] else DIFFERENT
    return decided, conflicts


def _unknown(by_pair: dict[str, list[Verdict]], known: Container[str]) -> list[dict]:
    """The verdicts naming pairs that are not in ``known``, in the order they were read."""
    return [
        {"pair_id": pid, "verdict": v.verdict, "annotator": v.annotator, "source": v.source}
        for pid, vs in by_pair.items()
        if pid not in known
        for v in vs
    ]


def _ballots(vs: list[Verdict]) -> list[dict]:
    return [{"verdict": v.verdict, "annotator": v.annotator, "source": v.source, "adjudication": v.adjudication} for v in vs]


def human_label(verdict: str, category: str) -> str:
    """Same -> identical; Different -> same_category_different_instance when both sides share the category
    (``category`` is "a|b" for cross-category pairs), else unrelated."""
    if verdict == SAME:
        return "identical"
    return "same_category_different_instance" if len(set(str(category).split("|"))) == 1 else "unrelated"


def apply_resolution(rows: list[dict], res: Resolution) -> list[dict]:
    """Only pending_review rows take human labels; auto-decided rows are kept as they are."""
    out = []
    for row in rows:
        verdict = res.decided.get(row["pair_id"])
        if row["label"] == PENDING and verdict is not None:
            row = {**row, "label": human_label(verdict, row["category"]), "verified_by": "human"}
        out.append(row)
    return out


# ---------------------------------------------------------------- the job


def read_pairs(out_dir: Path) -> list[dict]:
    """All rows of ``out_dir/pairs/*.parquet``, in file order; a pair id seen twice keeps its first row.
    Holds every pair: for small outputs and tests; the job streams (``form_final_pairs``)."""
    return [r for b in _unique_batches(_pair_files(Path(out_dir))) for r in b.to_pylist()]


def _pair_files(out_dir: Path) -> list[Path]:
    files = pair_files(out_dir / "pairs")
    if not files:
        raise ReviewInputError(f"{out_dir / 'pairs'}: no pairs/*.parquet here; run jobs/generate_pairs.py --out {out_dir} first")
    return files


def _unique_batches(files: list[Path]) -> Iterator[pa.RecordBatch]:
    """The pair batches with each pair id's first row only."""
    with FirstSeen() as seen:
        try:
            for batch in pair_batches(files):
                keep = seen.mask(batch.column("pair_id").to_pylist())
                yield batch if all(keep) else batch.filter(pa.array(keep))
        except PairFileError as err:
            raise ReviewInputError(str(err)) from None


def form_final_pairs(out_dir: str | Path, verdicts_path: str | Path | Sequence[str | Path], review: ReviewConfig | None = None) -> dict:
    """Fold the verdicts into ``out_dir/pairs`` and write ``out_dir/final_pairs``; returns the summary.
    Pairs stream through batch by batch; only the verdicts and the pair ids they name are held.
    ``review``: the QA settings (default: the run's own, from ``out_dir/_run.json``)."""
    from reid_ray.review.qa import qa_report

    out_dir = Path(out_dir)
    files = _pair_files(out_dir)
    cfg = review or run_review_config(out_dir)
    verdicts = read_verdicts(verdicts_path)
    gold = read_gold(out_dir / "review" / GOLD_FILE)
    qa = qa_report(verdicts, gold, cfg)
    counted = verdicts.without(set(qa.low_accuracy)) if cfg.on_low_accuracy == "drop" else verdicts
    by_pair = counted.by_pair()
    decided, conflicts = tally(by_pair)
    dest = out_dir / "final_pairs"
    fold = _fold_pairs(files, by_pair, decided, dest / "pairs.parquet")

    pending = {pid for pid, is_pending in fold.voted.items() if is_pending}
    by_humans = {pid: decided[pid] for pid in pending if pid in decided}
    conflicts_out = [c for pid, c in conflicts.items() if pid in pending]
    unknown = _unknown(by_pair, fold.voted)
    write_text_atomic(_jsonl(conflicts_out), dest / "conflicts.jsonl", fsync=True)
    n_adjudication_tasks = write_adjudication_tasks(conflicts_out, out_dir / "review" / TASKS_FILE, dest / ADJUDICATION_TASKS_FILE)
    write_text_atomic(_jsonl(unknown), dest / "unknown_verdicts.jsonl", fsync=True)
    write_json_atomic(qa.as_dict(), dest / QA_FILE)
    completed = complete_records(out_dir / "review" / RECORDS_FILE, by_humans)
    labels, verified = fold.labels, fold.verified_by
    summary = {
        "verdicts_file": [str(p) for p in verdicts.path] if isinstance(verdicts.path, list) else str(verdicts.path),
        "pairs": fold.pairs,
        "by_label": {k: labels.get(k, 0) for k in LABELS} | {k: n for k, n in labels.items() if k not in LABELS},
        "by_verified_by": verified_by_counts(verified),
        "verdicts_read": len(verdicts.verdicts),
        "verdicts_dropped": len(verdicts.verdicts) - len(counted.verdicts),
        "cancelled_annotations": verdicts.cancelled,
        "unanswered_records": verdicts.unanswered,
        "decided_by_humans": len(by_humans),
        "decided_by_adjudication": sum(1 for pid in by_humans if any(v.adjudication and v.verdict != UNSURE for v in by_pair[pid])),
        "conflicts": len(conflicts_out),
        "adjudication_tasks": n_adjudication_tasks,
        "unknown_verdicts": len(unknown),
        "gold_verdicts": sum(1 for v in counted.verdicts if v.pair_id in gold),
        "verdicts_on_auto_pairs": len(fold.voted) - len(pending),  # kept auto: humans review only what was routed to them
        "still_pending": labels.get(PENDING, 0),
        "pending_without_verdict": fold.pending_without_verdict,
        "records_completed": completed,
        "low_accuracy_annotators": qa.low_accuracy,
    }
    write_json_atomic(summary, dest / "summary.json")
    return summary


ADJUDICATION_TASKS_FILE = "adjudication_tasks.json"
QA_FILE = "qa.json"


def run_review_config(out_dir: Path) -> ReviewConfig:
    """The review settings the run was mined with (``_run.json``), else the defaults."""
    state = out_dir / "_run.json"
    if state.exists():
        review = (json.loads(state.read_text()).get("config") or {}).get("review")
        if isinstance(review, dict):
            return ReviewConfig.model_validate(review)
    return ReviewConfig()


def verified_by_counts(counts: Mapping) -> dict[str, int]:
    """Who decided, counted honestly: auto, human, and nobody yet (a null verified_by: still pending)."""
    out = {k: counts.get(k, 0) for k in VERIFIED_BY} | {NOBODY_YET: counts.get(None, 0)}
    return out | {k: n for k, n in counts.items() if k is not None and k not in VERIFIED_BY}


def write_adjudication_tasks(conflicts: list[dict], tasks_path: Path, dest: Path) -> int:
    """Each conflict as a Label Studio task of its own (``data.adjudication`` true, the first round's ballots
    shown), with the packet image of its first-round task. Rewritten whole each time: a conflict that the
    adjudicator settled is gone from it, so rounds repeat without duplicates."""
    wanted = {c["pair_id"]: c for c in conflicts}
    images: dict[str, str] = {}
    if wanted and tasks_path.exists():
        with tasks_path.open(encoding="utf-8") as f:
            for t in iter_json_array(f):
                if t["data"]["pair_id"] in wanted:
                    images[t["data"]["pair_id"]] = t["data"]["image"]
    tasks = [
        {"data": {"image": images.get(pid, packet_file_name(pid)), "pair_id": pid, "adjudication": True,
                  "first_round": ", ".join(f"{k} {n}" for k, n in c["votes"].items() if n)}}
        for pid, c in wanted.items()
    ]
    write_text_atomic(json.dumps(tasks, ensure_ascii=False, indent=1) + "\n", dest, fsync=True)
    return len(tasks)


def complete_records(path: Path, verdicts: Mapping[str, str]) -> int:
    """Mark the review records whose pair humans decided as completed (the seed's answer filled), streaming the
    file through a temp file; records already completed take the latest verdict. Returns how many are completed."""
    if not path.exists():
        return 0
    n = 0
    with atomic_files(path) as (out,):
        for rec in iter_records(path):
            if rec["pair_id"] in verdicts:
                rec = completed_record(rec, verdicts[rec["pair_id"]])
            n += rec.get("status") == COMPLETED
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return n


@dataclass
class _Fold:
    pairs: int = 0
    labels: Counter = field(default_factory=Counter)
    verified_by: Counter = field(default_factory=Counter)
    voted: dict[str, bool] = field(default_factory=dict)  # mined pair with verdicts -> was it pending_review
    pending_without_verdict: int = 0


def _fold_pairs(files: list[Path], by_pair: Mapping[str, list], decided: Mapping[str, str], dest: Path) -> _Fold:
    """Stream the unique pairs into ``dest`` (a temp file renamed at the end) with the human labels applied
    (only pending_review rows take them; auto-decided rows are kept as they are)."""
    fold = _Fold()
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_paths(dest) as (tmp,), pq.ParquetWriter(tmp, PAIR) as writer:
            for batch in _unique_batches(files):
                batch = _apply_verdicts(batch, by_pair, decided, fold)
                writer.write_batch(batch)
                fold.pairs += batch.num_rows
                fold.labels.update(_value_counts(batch.column("label")))
                fold.verified_by.update(_value_counts(batch.column("verified_by")))
    except BaseException:
        if not any(dest.parent.iterdir()):
            dest.parent.rmdir()  # nothing half-written
        raise
    return fold


def _apply_verdicts(batch: pa.RecordBatch, by_pair: Mapping[str, list], decided: Mapping[str, str], fold: _Fold) -> pa.RecordBatch:
    pids = batch.column("pair_id").to_pylist()
    label = batch.column("label")
    is_pending = pc.fill_null(pc.equal(label, PENDING), False)
    hits = [i for i, pid in enumerate(pids) if pid in by_pair]  # few: only pairs someone answered
    hit_pending = is_pending.take(hits).to_pylist() if hits else []
    fold.pending_without_verdict += pc.sum(is_pending).as_py() or 0
    fold.pending_without_verdict -= sum(hit_pending)
    change, new_labels = np.zeros(len(pids), bool), []
    categories = batch.column("category").take(hits).to_pylist() if hits else []
    for i, pending, category in zip(hits, hit_pending, categories):
        fold.voted[pids[i]] = pending
        if pending and pids[i] in decided:
            change[i] = True
            new_labels.append(human_label(decided[pids[i]], category))
    if not new_labels:
        return batch
    mask = pa.array(change)
    batch = batch.set_column(batch.schema.get_field_index("label"), "label", pc.replace_with_mask(label, mask, pa.array(new_labels, pa.string())))
    verified = pa.array(["human"] * len(new_labels), pa.string())
    i = batch.schema.get_field_index("verified_by")
    return batch.set_column(i, "verified_by", pc.replace_with_mask(batch.column(i), mask, verified))


def _value_counts(values: pa.Array) -> dict:
    return {c["values"]: c["counts"] for c in pc.value_counts(values).to_pylist()}


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
