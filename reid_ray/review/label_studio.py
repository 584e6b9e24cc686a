"""Label Studio import files and the JSON Lines review records for pairs routed to humans.

``write_review_outputs`` keeps ``tasks.json``, ``labeling_config.xml`` and ``records.jsonl`` keyed by pair id: a
rerun with the same pairs writes identical files, new pairs are appended, nothing is duplicated."""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Callable, Iterable

# A fixed namespace so a pair's classification_id is the same in every run and on every machine.
REVIEW_NAMESPACE = uuid.UUID("6f1d8f3a-2c55-4c8e-9a57-3f3a1f1c0b7e")
CHOICES = (("Same", "1"), ("Different", "2"), ("Unsure", "3"))


def labeling_config_xml() -> str:
    """Two aligned thumbnails in one packet image, the question, and three choices with hotkeys 1-3."""
    choices = "\n".join(f'    <Choice value="{v}" hotkey="{k}"/>' for v, k in CHOICES)
    return f"""<View>
  <Header value="$question"/>
  <Image name="packet" value="$image" zoom="true"/>
  <Choices name="verdict" toName="packet" choice="single-radio" required="true" showInline="true">
{choices}
  </Choices>
</View>
"""


def classification_id(pair_id: str) -> str:
    return str(uuid.uuid5(REVIEW_NAMESPACE, pair_id))


def _question(pair: dict) -> str:
    what = pair["category"].split("|")[0]
    return f"Same {what}? (conf {pair['confidence']:.2f}, gap {pair['gap_s']:.1f} s)"


def tasks_json(pairs: Iterable[dict], image_uri_for: Callable[[dict], str]) -> list[dict]:
    return [
        {
            "data": {
                "image": image_uri_for(p),
                "question": _question(p),
                "pair_id": p["pair_id"],
                "category": p["category"],
                "confidence": round(float(p["confidence"]), 4),
                "gap_s": round(float(p["gap_s"]), 3),
            }
        }
        for p in pairs
    ]


def review_records(pairs: Iterable[dict], project_title: str, created_at: str, image_uri_for: Callable[[dict], str] | None = None) -> list[dict]:
    records = []
    for p in pairs:
        cats = p["category"].split("|")
        cat_a, cat_b = (cats[0], cats[-1])
        score = round(float(p["confidence"]), 3)
        records.append(
            {
                "project_title": project_title,
                "classification_id": classification_id(p["pair_id"]),
                "segment": [
                    {"bbox": [round(float(v), 1) for v in p["a_bbox"]], "class": cat_a, "score": score},
                    {"bbox": [round(float(v), 1) for v in p["b_bbox"]], "class": cat_b, "score": score},
                ],
                "created_at": created_at,
                "status": "pending",
                "pair_id": p["pair_id"],
                "verdict": None,
                "image": image_uri_for(p) if image_uri_for else f"{p['pair_id']}.png",
            }
        )
    return records


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_review_outputs(pairs: list[dict], review_dir: Path, project_title: str, created_at: str, image_prefix: str = "") -> None:
    review_dir = Path(review_dir)
    review_dir.mkdir(parents=True, exist_ok=True)
    uri = lambda p: f"{image_prefix}{p['pair_id']}.png"  # noqa: E731
    tasks_path, records_path = review_dir / "tasks.json", review_dir / "records.jsonl"
    tasks = {t["data"]["pair_id"]: t for t in (json.loads(tasks_path.read_text()) if tasks_path.exists() else [])}
    records = {}
    if records_path.exists():
        for line in records_path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                records[r["pair_id"]] = r
    for t in tasks_json(pairs, uri):
        tasks.setdefault(t["data"]["pair_id"], t)
    for r in review_records(pairs, project_title, created_at, uri):
        records.setdefault(r["pair_id"], r)  # an answered record is never reset by a rerun
    order = sorted(tasks)
    _write_atomic(tasks_path, json.dumps([tasks[k] for k in order], indent=1) + "\n")
    _write_atomic(records_path, "".join(json.dumps(records[k], sort_keys=True) + "\n" for k in sorted(records)))
    _write_atomic(review_dir / "labeling_config.xml", labeling_config_xml())
