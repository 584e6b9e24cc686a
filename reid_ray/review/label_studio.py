"""Label Studio adapters for the review of uncertain pairs: labeling config, import tasks, review records.

``review_dir`` holds ``<pair_id>.png`` (the packets), ``tasks.json`` (Label Studio import),
``labeling_config.xml`` and ``records.jsonl`` (one review record per pair; the annotator fills ``verdict``).
Writes are idempotent and keyed by pair_id: a rerun with the same pairs leaves the files byte-identical and
never touches a record that is already there (it may hold a verdict).
"""
from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

VERDICT_CHOICES = ("Same", "Different", "Unsure")
PENDING = "pending"
# Fixed namespace: classification ids are uuid5(namespace, pair_id), identical on every rerun and machine.
RECORD_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/reid-ray/review-records")

TASKS_FILE = "tasks.json"
CONFIG_FILE = "labeling_config.xml"
RECORDS_FILE = "records.jsonl"


class ReviewFileError(ValueError):
    """An existing review file that cannot be read; the message names the file and line."""


def labeling_config_xml() -> str:
    """The packet PNG is the one view (it already holds both crops, captions and overviews);
    a single required radio choice with hotkeys 1/2/3."""
    choices = "\n".join(
        f'    <Choice value="{c}" hotkey="{i}"/>' for i, c in enumerate(VERDICT_CHOICES, start=1)
    )
    return f"""<View>
  <Header value="Is it the same entity in A and B? (1 Same, 2 Different, 3 Unsure)" size="5"/>
  <Image name="packet" value="$image" zoom="true" zoomControl="true"/>
  <Choices name="verdict" toName="packet" choice="single-radio" required="true"
           requiredMessage="Pick Same, Different or Unsure" showInline="true">
{choices}
  </Choices>
</View>
"""


def default_image_uri(prefix: str = "") -> Callable[[dict], str]:
    """``<prefix><pair_id>.png``: relative to review_dir by default; a URL or storage prefix for hosted images."""
    return lambda pair: f"{prefix}{pair['pair_id']}.png"


def tasks_json(pairs: list[dict], image_uri_for: Callable[[dict], str]) -> list[dict]:
    """Label Studio import tasks; ``image`` is what the config shows, the rest shows in the data manager."""
    return [
        {
            "data": {
                "image": image_uri_for(p),
                "pair_id": p["pair_id"],
                "category": p.get("category"),
                "confidence": _round(p.get("confidence"), 3),
                "gap_s": _round(p.get("gap_s"), 3),
            }
        }
        for p in pairs
    ]


def classification_id(pair_id: str) -> str:
    return str(uuid.uuid5(RECORD_NAMESPACE, pair_id))


def review_records(
    pairs: list[dict],
    project_title: str,
    created_at: str,
    *,
    image_uri_for: Callable[[dict], str] | None = None,
) -> list[dict]:
    """One review record per pair: the two sides as segments (a then b), verdict null until answered."""
    image_for = image_uri_for or default_image_uri()
    return [
        {
            "project_title": project_title,
            "classification_id": classification_id(p["pair_id"]),
            "segment": [_segment(p, "a"), _segment(p, "b")],
            "created_at": created_at,
            "status": PENDING,
            "pair_id": p["pair_id"],
            "verdict": None,
            "image": image_for(p),
        }
        for p in pairs
    ]


def _segment(pair: dict, side: str) -> dict:
    cats = str(pair.get("category") or "").split("|")
    cat = cats[0] if side == "a" or len(cats) == 1 else cats[1]  # "a_cat|b_cat" for unrelated pairs
    return {
        "bbox": [_round(v, 2) for v in pair[f"{side}_bbox"]],
        "class": cat,
        "score": _round(pair.get("confidence"), 3),
    }


def _round(v: float | None, nd: int) -> float | None:
    return None if v is None else round(float(v), nd)


def write_review_outputs(
    pairs: list[dict],
    review_dir: str | Path,
    project_title: str,
    created_at: str,
    *,
    image_prefix: str = "",
) -> dict:
    """Write/merge tasks.json, labeling_config.xml and records.jsonl. Returns counts (added, total)."""
    review_dir = Path(review_dir)
    review_dir.mkdir(parents=True, exist_ok=True)
    pairs = _unique_by_pair_id(pairs)
    image_for = default_image_uri(image_prefix)

    tasks_path = review_dir / TASKS_FILE
    old_tasks = _read_tasks(tasks_path)
    known = {t["data"]["pair_id"] for t in old_tasks}
    tasks = old_tasks + tasks_json([p for p in pairs if p["pair_id"] not in known], image_for)

    records_path = review_dir / RECORDS_FILE
    old_records = read_records(records_path)
    known_r = {r["pair_id"] for r in old_records}
    new_records = review_records([p for p in pairs if p["pair_id"] not in known_r], project_title, created_at,
                                 image_uri_for=image_for)
    records = old_records + new_records

    atomic_write_text(tasks_path, json.dumps(tasks, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(review_dir / CONFIG_FILE, labeling_config_xml())
    atomic_write_text(records_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return {"added": len(new_records), "total": len(records), "review_dir": str(review_dir)}


def _unique_by_pair_id(pairs: Iterable[dict]) -> list[dict]:
    seen: dict[str, dict] = {}
    for p in pairs:
        seen.setdefault(p["pair_id"], p)  # first wins, order kept
    return list(seen.values())


def _read_tasks(path: Path) -> list[dict]:
    if not path.exists():
        return []
    try:
        tasks = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ReviewFileError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(tasks, list):
        raise ReviewFileError(f"{path}: expected a JSON list of tasks")
    for i, t in enumerate(tasks):
        if not isinstance(t, dict) or not isinstance(t.get("data"), dict) or "pair_id" not in t["data"]:
            raise ReviewFileError(f"{path}: task {i} has no data.pair_id")
    return tasks


def read_records(path: str | Path) -> list[dict]:
    """Existing review records (kept verbatim on merge: they may hold an annotator's verdict)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise ReviewFileError(f"{path}:{n}: not valid JSON ({err.msg})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("pair_id"), str):
            raise ReviewFileError(f"{path}:{n}: a record must be a JSON object with a string 'pair_id'")
        out.append(rec)
    return out


def atomic_write_text(path: Path, text: str) -> None:
    """Temp file in the same directory, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
