"""Label Studio adapters for the review of uncertain pairs: labeling config, import tasks, review records.

``review_dir`` holds ``<pair_id>.png`` (the packets), ``tasks.json`` (Label Studio import),
``labeling_config.xml`` and ``records.jsonl`` (one review record per pair; the annotator fills ``verdict``).
Writes are idempotent and keyed by pair_id: a rerun with the same pairs leaves the files byte-identical and
never touches a record that is already there (it may hold a verdict). Pairs, tasks and records stream through.
"""
from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import pyarrow.compute as pc

from reid_ray.config import ReviewConfig
from reid_ray.io import atomic_files, write_text_atomic
from reid_ray.names import packet_file_name
from reid_ray.review.gold import GOLD_FILE, gold_answer, gold_record, merged_gold_lines
from reid_ray.review.json_stream import JsonArrayWriter, JsonStreamError, iter_json_array
from reid_ray.review.pair_stream import pair_batches, pair_files

VERDICT_CHOICES = ("Same", "Different", "Unsure")
PENDING = "pending"
# Fixed namespace: classification ids are uuid5(namespace, pair_id), identical on every rerun and machine.
RECORD_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/reid-ray/review-records")

TASKS_FILE = "tasks.json"
CONFIG_FILE = "labeling_config.xml"
RECORDS_FILE = "records.jsonl"
PENDING_REVIEW = "pending_review"  # the PAIR label of the pairs sent here
REVIEW_COLUMNS = ("pair_id", "label", "verified_by", "kind", "category", "confidence", "gap_s",
                  "a_bbox", "b_bbox", "a_score", "b_score")  # what the files show and what picks gold questions
COMPLETED = "completed"
# The seed's record holds one yes/no answer per judged view, keyed segment<N>_image_<N>; a pair's packet is one view.
ANSWER_KEY = "segment1_image_1"
ANSWERS = {"Same": "yes", "Different": "no", "Unsure": "unsure"}


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


# Label Studio serves LOCAL_FILES_DOCUMENT_ROOT/<d> here (LOCAL_FILES_SERVING_ENABLED=true); file names are
# URL-safe (reid_ray.names), so ``d`` needs no quoting.
LOCAL_FILES_URL = "/data/local-files/?d="


def default_image_uri(prefix: str = "") -> Callable[[Mapping], str]:
    """``<prefix><pair_id>.png``: relative to review_dir by default; a URL or storage prefix for hosted images:
    ``LOCAL_FILES_URL + "review/"`` when Label Studio's local files are rooted at the job's --out, ``s3://.../review/``
    for an S3 source storage."""
    return lambda pair: f"{prefix}{packet_file_name(pair['pair_id'])}"


def tasks_json(pairs: Iterable[Mapping], image_uri_for: Callable[[Mapping], str]) -> list[dict]:
    """Label Studio import tasks; ``image`` is what the config shows, the rest shows in the data manager."""
    return [task(p, image_uri_for) for p in pairs]


def task(pair: Mapping, image_uri_for: Callable[[Mapping], str]) -> dict:
    """Plain JSON only (a NaN, which a browser's JSON.parse refuses, becomes null). The model's confidence is left
    out, as on the packet: the data manager shows task fields, and a gold question's would give it away."""
    return {
        "data": {
            "image": image_uri_for(pair),
            "pair_id": pair["pair_id"],
            "category": pair.get("category"),
            "gap_s": _json_number(_round(pair.get("gap_s"), 3)),
        }
    }


def _json_number(v: float | None) -> float | None:
    return v if v is None or math.isfinite(v) else None


def classification_id(pair_id: str) -> str:
    return str(uuid.uuid5(RECORD_NAMESPACE, pair_id))


def review_records(
    pairs: Iterable[Mapping],
    project_title: str,
    created_at: str,
    *,
    image_uri_for: Callable[[Mapping], str] | None = None,
) -> list[dict]:
    """One review record per pair: the two sides as segments (a then b), verdict null until answered."""
    image_for = image_uri_for or default_image_uri()
    return [review_record(p, project_title, created_at, image_for) for p in pairs]


def review_record(pair: Mapping, project_title: str, created_at: str, image_uri_for: Callable[[Mapping], str]) -> dict:
    """The seed's record, field for field (answer null and status pending until a verdict is in), then the
    pair id and the packet it shows."""
    return {
        "project_title": project_title,
        "classification_id": classification_id(pair["pair_id"]),
        ANSWER_KEY: None,
        "segment": [_segment(pair, "a"), _segment(pair, "b")],
        "created_at": created_at,
        "status": PENDING,
        "pair_id": pair["pair_id"],
        "image": image_uri_for(pair),
    }


def completed_record(record: dict, verdict: str) -> dict:
    """``record`` with the verdict in (``Same`` / ``Different``, as yes / no) and status completed."""
    return {**record, ANSWER_KEY: ANSWERS[verdict], "status": COMPLETED}


def _segment(pair: Mapping, side: str) -> dict:
    cats = str(pair.get("category") or "").split("|")
    cat = cats[0] if side == "a" or len(cats) == 1 else cats[1]  # "a_cat|b_cat" for unrelated pairs
    return {
        "bbox": [_round(v, 2) for v in pair[f"{side}_bbox"]],
        "class": cat,
        "score": _round(pair.get(f"{side}_score"), 3),  # the detector's, as the seed records it
    }


def _round(v: float | None, nd: int) -> float | None:
    return None if v is None else round(float(v), nd)


REVIEW_FILTER = (pc.field("label") == PENDING_REVIEW) | ((pc.field("kind") == "match") & (pc.field("verified_by") == "auto"))


def pending_pairs(pairs_dir: str | Path, cfg: ReviewConfig | None = None) -> Iterator[dict]:
    """What goes to review from ``pairs_dir/*.parquet``, in file then row order, read a batch at a time with only
    the columns the review files show: the pending_review rows, and the gold questions (``gold`` set to the
    expected verdict) among the auto-decided matches."""
    return review_pairs(pair_batches(pair_files(pairs_dir), columns=list(REVIEW_COLUMNS), filter=REVIEW_FILTER), cfg or ReviewConfig())


def review_pairs(batches: Iterable, cfg: ReviewConfig) -> Iterator[dict]:
    """Batches of REVIEW_COLUMNS rows (pending and auto-decided matches) -> the rows that go to review."""
    for batch in batches:
        for pair in batch.to_pylist():
            if pair["label"] == PENDING_REVIEW:
                yield pair
            elif (expected := gold_answer(pair, cfg)) is not None:
                yield {**pair, "gold": expected}


def write_review_outputs(
    pairs: Iterable[Mapping],
    review_dir: str | Path,
    project_title: str,
    created_at: str,
    *,
    image_prefix: str = "",
) -> dict:
    """Write/merge tasks.json, labeling_config.xml and records.jsonl, streaming: existing tasks and records are
    copied through and ``pairs`` (any iterable, e.g. ``pending_pairs``) is consumed once, so memory holds one
    task or record at a time plus the pair ids. Returns counts: given (rows read), added (records), total."""
    review_dir = Path(review_dir)
    review_dir.mkdir(parents=True, exist_ok=True)
    image_for = default_image_uri(image_prefix)
    tasks_path, records_path = review_dir / TASKS_FILE, review_dir / RECORDS_FILE
    # Pair id -> where it is already (bit flags). Ids only, a few dozen bytes each, and only of pairs sent to
    # review, which is bounded by what annotators can answer, like the verdicts; the records themselves stream.
    # A sorted merge would not do: the files keep their order (old entries first, new ones appended).
    where: dict[str, int] = {}
    gold: list[dict] = []  # a small share of the auto-decided matches: bounded like the tasks
    given = added = total = 0
    with atomic_files(tasks_path, records_path, fsync=True) as (tasks_out, records_out):
        tasks = JsonArrayWriter(tasks_out)
        for t in _iter_tasks(tasks_path):
            tasks.add(t)
            _flag(where, t["data"]["pair_id"], _IN_TASKS)
        for rec in iter_records(records_path):
            records_out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            _flag(where, rec["pair_id"], _IN_RECORDS)
            total += 1
        for p in pairs:
            given += 1
            flags = where.get(p["pair_id"], 0)
            if flags & _GIVEN:  # a pair id seen twice: the first row wins
                continue
            where[p["pair_id"]] = flags | _GIVEN
            if not flags & _IN_TASKS:
                tasks.add(task(p, image_for))
            if p.get("gold"):  # a gold question: its answer goes to gold.jsonl, it gets no record
                gold.append(gold_record(p, p["gold"]))
            elif not flags & _IN_RECORDS:
                records_out.write(json.dumps(review_record(p, project_title, created_at, image_for), ensure_ascii=False) + "\n")
                added += 1
        tasks.close()
        tasks_out.write("\n")
        write_text_atomic(labeling_config_xml(), review_dir / CONFIG_FILE, fsync=True)
        if gold or (review_dir / GOLD_FILE).exists():
            write_text_atomic(merged_gold_lines(review_dir / GOLD_FILE, gold), review_dir / GOLD_FILE, fsync=True)
    return {"given": given, "added": added, "total": total + added, "gold": len(gold), "review_dir": str(review_dir)}


_IN_TASKS, _IN_RECORDS, _GIVEN = 1, 2, 4


def _flag(where: dict[str, int], pair_id: str, flag: int) -> None:
    where[pair_id] = where.get(pair_id, 0) | flag


def _iter_tasks(path: Path) -> Iterator[dict]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        try:
            for i, t in enumerate(iter_json_array(f)):
                if not isinstance(t, dict) or not isinstance(t.get("data"), dict) or "pair_id" not in t["data"]:
                    raise ReviewFileError(f"{path}: task {i} has no data.pair_id")
                yield t
        except JsonStreamError as err:
            raise ReviewFileError(f"{path}: not a valid JSON list of tasks ({err})") from None


def read_records(path: str | Path) -> list[dict]:
    """Existing review records (kept verbatim on merge: they may hold an annotator's verdict)."""
    return list(iter_records(path))


def iter_records(path: str | Path) -> Iterator[dict]:
    """``read_records`` a line at a time."""
    path = Path(path)
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise ReviewFileError(f"{path}:{n}: not valid JSON ({err.msg})") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("pair_id"), str):
                raise ReviewFileError(f"{path}:{n}: a record must be a JSON object with a string 'pair_id'")
            yield rec
