"""Human verdicts back into pairs.

Reads a Label Studio JSON export (or its JSON_MIN flavour) or the review records (JSON Lines) with ``verdict``
filled, resolves several verdicts per pair by majority, lists ties for adjudication, reports verdicts for
pairs nobody mined (never dropped silently) and writes the final pairs under ``DIR/final_pairs/``.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from reid_ray.io import write_json_atomic, write_table_atomic
from reid_ray.review.label_studio import atomic_write_text
from reid_ray.schemas import LABELS, PAIR, VERIFIED_BY, table_from_rows

SAME, DIFFERENT, UNSURE = "Same", "Different", "Unsure"
_WORDS = {"same": SAME, "yes": SAME, "different": DIFFERENT, "no": DIFFERENT, "unsure": UNSURE}
PENDING = "pending_review"


class ReviewInputError(ValueError):
    """An input of the review step that cannot be used; the message says which file and what is wrong."""


class VerdictFileError(ReviewInputError):
    """A malformed verdict file; the message names the file and the line (JSON Lines) or task (JSON)."""


@dataclass(frozen=True)
class Verdict:
    pair_id: str
    verdict: str  # Same / Different / Unsure
    annotator: str | None
    source: str  # where it was read, for messages: "file line 3", "file task 2"


@dataclass
class VerdictSet:
    path: Path
    verdicts: list[Verdict] = field(default_factory=list)
    cancelled: int = 0  # Label Studio annotations with was_cancelled (skipped tasks)
    unanswered: int = 0  # records whose verdict is still null

    def by_pair(self) -> dict[str, list[Verdict]]:
        """Verdicts per pair; one annotator's later verdict on a pair replaces their earlier one
        (a corrected answer, or the same export read twice, must not count twice)."""
        out: dict[str, dict[Any, Verdict]] = {}
        for i, v in enumerate(self.verdicts):
            key = v.annotator if v.annotator is not None else ("anonymous", i)
            out.setdefault(v.pair_id, {})[key] = v
        return {pid: list(vs.values()) for pid, vs in out.items()}

    @property
    def votes(self) -> dict[str, list[str]]:
        return {pid: [v.verdict for v in vs] for pid, vs in self.by_pair().items()}


# ---------------------------------------------------------------- reading


def read_verdicts(path: str | Path) -> VerdictSet:
    """A Label Studio JSON export (a list) or JSON Lines records; the format is told from the first character."""
    path = Path(path)
    if not path.is_file():
        raise VerdictFileError(f"{path}: no such verdict file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise VerdictFileError(f"{path}: not UTF-8 text ({err.reason})") from None
    if text.lstrip().startswith("["):
        return _read_json_export(path, text)
    return _read_jsonl(path, text)


def _read_json_export(path: Path, text: str) -> VerdictSet:
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as err:
        raise VerdictFileError(f"{path} line {err.lineno}: not valid JSON ({err.msg})") from None
    out = VerdictSet(path)
    for i, task in enumerate(tasks):
        where = f"{path} task {i}"
        if not isinstance(task, dict):
            raise VerdictFileError(f"{where}: a task must be a JSON object, got {type(task).__name__}")
        if "data" in task:
            _add_task(out, task, where)
        else:  # JSON_MIN export: data keys and control values flattened into the task
            _add_record(out, task, where)
    return out


def _add_task(out: VerdictSet, task: dict, where: str) -> None:
    pair_id = _pair_id(task.get("data"), where, "data.pair_id")
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
            out.verdicts.append(Verdict(pair_id, _normalise(choice, here), _annotator(ann.get("completed_by")), here))


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


def _read_jsonl(path: Path, text: str) -> VerdictSet:
    out = VerdictSet(path)
    for n, line in enumerate(text.splitlines(), start=1):
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
    if "verdict" not in record:
        raise VerdictFileError(f"{where}: no 'verdict' key (use null for a pair not answered yet)")
    if record["verdict"] is None:
        out.unanswered += 1
        return
    out.verdicts.append(Verdict(pair_id, _normalise(record["verdict"], where), _annotator(record.get("annotator")), where))


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


def _annotator(value: Any) -> str | None:
    if isinstance(value, dict):  # Label Studio may expand completed_by into a user object
        value = value.get("email") or value.get("id")
    return None if value is None or value == "" else str(value)


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
    decided, conflicts, unknown = {}, [], []
    for pid, vs in by_pair.items():
        if pid not in known_set:
            unknown += [{"pair_id": pid, "verdict": v.verdict, "annotator": v.annotator, "source": v.source} for v in vs]
            continue
        counts = Counter(v.verdict for v in vs)
        if counts[SAME] == counts[DIFFERENT]:
            conflicts.append({"pair_id": pid, "votes": {k: counts[k] for k in (SAME, DIFFERENT, UNSURE)}, "ballots": _ballots(vs)})
        else:
            decided[pid] = SAME if counts[SAME] > counts[DIFFERENT] else DIFFERENT
    no_verdict = [pid for pid in dict.fromkeys(known) if pid not in by_pair]
    return Resolution(decided, conflicts, unknown, no_verdict)


def _ballots(vs: list[Verdict]) -> list[dict]:
    return [{"verdict": v.verdict, "annotator": v.annotator, "source": v.source} for v in vs]


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
    """All rows of ``out_dir/pairs/*.parquet``, in file order; a pair id seen twice keeps its first row."""
    pairs_dir = out_dir / "pairs"
    files = sorted(pairs_dir.glob("*.parquet")) if pairs_dir.is_dir() else []
    if not files:
        raise ReviewInputError(f"{pairs_dir}: no pairs/*.parquet here; run jobs/generate_pairs.py --out {out_dir} first")
    rows: dict[str, dict] = {}
    for f in files:
        for row in _read_pair_file(f).to_pylist():
            rows.setdefault(row["pair_id"], row)
    return list(rows.values())


def _read_pair_file(path: Path) -> pa.Table:
    try:
        return pq.read_table(path, schema=PAIR)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise ReviewInputError(f"{path}: not a readable PAIR table ({err})") from None


def form_final_pairs(out_dir: str | Path, verdicts_path: str | Path) -> dict:
    """Fold the verdicts into ``out_dir/pairs`` and write ``out_dir/final_pairs``; returns the summary."""
    out_dir = Path(out_dir)
    rows = read_pairs(out_dir)
    verdicts = read_verdicts(verdicts_path)
    res = resolve(verdicts, rows)
    final = apply_resolution(rows, res)

    pending_ids = {r["pair_id"] for r in rows if r["label"] == PENDING}
    conflicts = [c for c in res.conflicts if c["pair_id"] in pending_ids]
    dest = out_dir / "final_pairs"
    write_table_atomic(table_from_rows(final, PAIR), dest / "pairs.parquet")
    atomic_write_text(dest / "conflicts.jsonl", _jsonl(conflicts))
    atomic_write_text(dest / "unknown_verdicts.jsonl", _jsonl(res.unknown))
    summary = _summary(final, res, verdicts, pending_ids, len(conflicts), Path(verdicts_path))
    write_json_atomic(summary, dest / "summary.json")
    return summary


def _summary(final: list[dict], res: Resolution, verdicts: VerdictSet, pending_ids: set[str], n_conflicts: int, path: Path) -> dict:
    labels = Counter(r["label"] for r in final)
    verified = Counter(r["verified_by"] for r in final)
    on_auto = [pid for pid in [*res.decided, *(c["pair_id"] for c in res.conflicts)] if pid not in pending_ids]
    return {
        "verdicts_file": str(path),
        "pairs": len(final),
        "by_label": {k: labels.get(k, 0) for k in LABELS} | {k: n for k, n in labels.items() if k not in LABELS},
        "by_verified_by": {k: verified.get(k, 0) for k in VERIFIED_BY} | {k: n for k, n in verified.items() if k not in VERIFIED_BY},
        "verdicts_read": len(verdicts.verdicts),
        "cancelled_annotations": verdicts.cancelled,
        "unanswered_records": verdicts.unanswered,
        "decided_by_humans": sum(1 for pid in res.decided if pid in pending_ids),
        "conflicts": n_conflicts,
        "unknown_verdicts": len(res.unknown),
        "verdicts_on_auto_pairs": len(on_auto),  # kept auto: humans review only what was routed to them
        "still_pending": labels.get(PENDING, 0),
        "pending_without_verdict": sum(1 for pid in res.no_verdict if pid in pending_ids),
    }


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
