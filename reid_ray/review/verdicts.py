"""Human verdicts back into pairs: read a Label Studio export or JSON Lines records, resolve repeated verdicts
by majority, list real conflicts for adjudication, report verdicts for unknown pairs, write the final pairs."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from reid_ray.io import read_tables, write_json_atomic, write_table_atomic
from reid_ray.schemas import PAIR, table_from_rows

VERDICT_WORDS = {"same": "Same", "yes": "Same", "different": "Different", "no": "Different", "unsure": "Unsure"}


class VerdictFileError(ValueError):
    """A verdict file that cannot be read; the message names the file and the line or task."""


@dataclass
class VerdictSet:
    votes: dict[str, list[str]] = field(default_factory=dict)  # pair_id -> ["Same", "Different", "Unsure", ...]

    def add(self, pair_id: str, verdict: str) -> None:
        self.votes.setdefault(pair_id, []).append(verdict)


def _normalise(value, where: str) -> str:
    word = VERDICT_WORDS.get(str(value).strip().lower())
    if word is None:
        raise VerdictFileError(f"{where}: verdict {value!r} is not one of Same, Different, Unsure (or yes/no)")
    return word


def _read_label_studio(tasks: list, path: Path) -> VerdictSet:
    out = VerdictSet()
    for i, task in enumerate(tasks):
        where = f"{path} task {i}"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict) or "pair_id" not in task["data"]:
            raise VerdictFileError(f"{where}: a task needs data.pair_id")
        for ann in task.get("annotations") or []:
            if ann.get("was_cancelled"):
                continue
            for res in ann.get("result") or []:
                if res.get("from_name") != "verdict":
                    continue
                choices = (res.get("value") or {}).get("choices")
                if not choices:
                    raise VerdictFileError(f"{where}: verdict result without choices")
                out.add(str(task["data"]["pair_id"]), _normalise(choices[0], where))
    return out


def _read_jsonl(path: Path) -> VerdictSet:
    out = VerdictSet()
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {n}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise VerdictFileError(f"{where}: not JSON ({err.msg})") from None
        if not isinstance(rec, dict) or "pair_id" not in rec:
            raise VerdictFileError(f"{where}: a record needs pair_id")
        if rec.get("verdict") is None:
            continue  # not answered yet
        out.add(str(rec["pair_id"]), _normalise(rec["verdict"], where))
    return out


def read_verdicts(path: str | Path) -> VerdictSet:
    path = Path(path)
    if not path.exists():
        raise VerdictFileError(f"{path}: no such verdict file")
    text = path.read_text()
    if text.lstrip().startswith("["):
        try:
            tasks = json.loads(text)
        except json.JSONDecodeError as err:
            raise VerdictFileError(f"{path} line {err.lineno}: not valid JSON ({err.msg})") from None
        return _read_label_studio(tasks, path)
    return _read_jsonl(path)


@dataclass
class Resolution:
    decided: dict[str, str]  # pair_id -> Same / Different
    conflicts: dict[str, list[str]]
    unknown: dict[str, list[str]]


def resolve(verdicts: VerdictSet, known_pair_ids: set[str]) -> Resolution:
    """Majority of Same/Different per pair; Unsure is no vote; a tie or only Unsure is a conflict."""
    decided, conflicts, unknown = {}, {}, {}
    for pid, votes in sorted(verdicts.votes.items()):
        if pid not in known_pair_ids:
            unknown[pid] = votes
            continue
        c = Counter(v for v in votes if v != "Unsure")
        if c["Same"] == c["Different"]:
            conflicts[pid] = votes
        else:
            decided[pid] = "Same" if c["Same"] > c["Different"] else "Different"
    return Resolution(decided, conflicts, unknown)


def human_label(verdict: str, category: str) -> str:
    if verdict == "Same":
        return "identical"
    cats = category.split("|")
    return "same_category_different_instance" if len(set(cats)) == 1 else "unrelated"


def form_final_pairs(out_dir: str | Path, verdicts_path: str | Path) -> dict:
    out = Path(out_dir)
    files = sorted((out / "pairs").glob("*.parquet"))
    if not files:
        raise VerdictFileError(f"{out / 'pairs'}: no pairs here; run jobs/generate_pairs.py with --out {out} first")
    pairs = read_tables(files, PAIR).to_pylist()
    res = resolve(read_verdicts(verdicts_path), {p["pair_id"] for p in pairs})
    for p in pairs:
        verdict = res.decided.get(p["pair_id"])
        if verdict and p["label"] == "pending_review":
            p["label"] = human_label(verdict, p["category"])
            p["verified_by"] = "human"
    final = out / "final_pairs"
    write_table_atomic(table_from_rows(pairs, PAIR), final / "pairs.parquet")
    final.joinpath("conflicts.jsonl").write_text("".join(json.dumps({"pair_id": k, "votes": v}) + "\n" for k, v in res.conflicts.items()))
    final.joinpath("unknown_verdicts.jsonl").write_text("".join(json.dumps({"pair_id": k, "votes": v}) + "\n" for k, v in res.unknown.items()))
    summary = {
        "pairs": len(pairs),
        "by_label": dict(Counter(p["label"] for p in pairs)),
        "by_verified_by": dict(Counter(p["verified_by"] for p in pairs)),
        "decided_by_humans": len(res.decided),
        "conflicts": len(res.conflicts),
        "unknown_verdicts": len(res.unknown),
        "still_pending": sum(p["label"] == "pending_review" for p in pairs),
    }
    write_json_atomic(summary, final / "summary.json")
    return summary
