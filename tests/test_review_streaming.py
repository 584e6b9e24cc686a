"""The review writer and form_pairs stream their inputs: over a few thousand pairs in many files (batches
smaller than the data) they give what the all-in-memory fold gives, and the review files stay byte-identical
on rerun. Behaviour only; bench/bench_form_pairs.py measures time and memory at a million pairs."""
from __future__ import annotations

import hashlib
import io
import json
import random
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from reid_ray.config import ReviewConfig
from reid_ray.review.gold import gold_answer, read_gold
from reid_ray.review.json_stream import JsonArrayWriter, JsonStreamError, iter_json_array
from reid_ray.review.label_studio import pending_pairs, review_records, tasks_json, write_review_outputs
from reid_ray.review.verdicts import apply_resolution, form_final_pairs, read_verdicts, resolve
from reid_ray.schemas import LABELS, PAIR, table_from_rows

CATEGORIES = ("person", "face", "product")


def pair_row(rng: random.Random, video: str, k: int, label: str) -> dict:
    cp = f"{video}__{rng.randrange(9000):07d}_{rng.randrange(9000, 20000):07d}"
    cat = rng.choice(CATEGORIES)
    category = f"{cat}|{rng.choice([c for c in CATEGORIES if c != cat])}" if label == "unrelated" else cat

    def side(s: str) -> dict:
        x, y = rng.uniform(0, 600), rng.uniform(0, 400)
        return {f"{s}_video_id": video, f"{s}_frame": rng.randrange(20000), f"{s}_t_s": rng.uniform(0, 800),
                f"{s}_bbox": [x, y, x + rng.uniform(8, 80), y + rng.uniform(20, 160)],
                f"{s}_candidate_id": f"{cp}__{s}__{k:07d}_000", f"{s}_track_id": rng.randrange(30)}

    return {
        "pair_id": hashlib.sha1(f"{cp}|{k}".encode()).hexdigest()[:16], "label": label,
        "confidence": rng.random(), "verified_by": None if label == "pending_review" else "auto",
        "gap_s": rng.choice([5.0, 10.0, 30.0]), "category": category, "license": "CC-BY-4.0", "clip_pair_id": cp,
        "similarity": rng.random(), "kind": "unrelated" if label == "unrelated" else "match", **side("a"), **side("b"),
    }


@pytest.fixture
def mined(tmp_path) -> Path:
    """40 pairs files, 3,000 rows, ~20 % pending; one pair id repeated in a later file and one within a file
    (the first row must win)."""
    rng, out = random.Random(7), tmp_path / "out"
    (out / "pairs").mkdir(parents=True)
    weights = {"identical": 40, "same_category_different_instance": 25, "unrelated": 15, "pending_review": 20}
    files = []
    for v in range(40):
        rows = [pair_row(rng, f"video_{v:03d}", k, rng.choices(list(weights), list(weights.values()))[0]) for k in range(75)]
        files.append(rows)
    files[0][3]["label"] = "pending_review"
    files[31].append({**files[0][3], "label": "identical", "verified_by": "auto"})  # a later file: dropped
    files[5].insert(10, {**files[5][40], "confidence": 0.5})  # earlier in its own file: this one wins
    for v, rows in enumerate(files):
        pq.write_table(table_from_rows(rows, PAIR), out / "pairs" / f"video_{v:03d}.parquet", row_group_size=32)
    return out


def verdict_votes(out: Path) -> list[tuple[str, str, str]]:
    """(pair_id, verdict, annotator): up to three annotators on most pending pairs (ties included), a few on
    auto pairs, a few on pairs nobody mined."""
    rng = random.Random(11)
    rows = pq.read_table(out / "pairs").to_pylist()
    votes = []
    for r in rows:
        if r["label"] == "pending_review" and rng.random() < 0.85:
            votes += [(r["pair_id"], rng.choice(["Same", "Different", "Unsure"]), f"ann{a}@x.org") for a in range(rng.randint(1, 3))]
        elif r["label"] != "pending_review" and rng.random() < 0.02:
            votes.append((r["pair_id"], "Different", "ann0@x.org"))
    votes += [(f"ghost{i:03d}", "Same", "ann1@x.org") for i in range(5)]
    return votes


def label_studio_export(votes: list[tuple[str, str, str]]) -> list[dict]:
    by_pair: dict[str, list] = {}
    for pid, verdict, who in votes:
        by_pair.setdefault(pid, []).append({"completed_by": {"email": who}, "was_cancelled": False, "lead_time": 3.2,
                                            "result": [{"from_name": "verdict", "to_name": "packet", "type": "choices",
                                                        "value": {"choices": [verdict]}}]})
    return [{"id": i, "data": {"pair_id": pid, "image": f"{pid}.png"}, "annotations": anns} for i, (pid, anns) in enumerate(by_pair.items())]


def in_memory_fold(out: Path, verdicts_path: Path) -> tuple[list[dict], dict]:
    """What form_pairs did before it streamed: every row in memory, resolved and applied as a whole."""
    rows: dict[str, dict] = {}
    for f in sorted((out / "pairs").glob("*.parquet")):
        for r in pq.read_table(f, schema=PAIR).to_pylist():
            rows.setdefault(r["pair_id"], r)
    verdicts = read_verdicts(verdicts_path)
    res = resolve(verdicts, list(rows.values()))
    final = apply_resolution(list(rows.values()), res)
    pending = {pid for pid, r in rows.items() if r["label"] == "pending_review"}
    labels = Counter(r["label"] for r in final)
    on_auto = [pid for pid in [*res.decided, *(c["pair_id"] for c in res.conflicts)] if pid not in pending]
    summary = {
        "pairs": len(final), "by_label": {k: labels.get(k, 0) for k in LABELS},
        "decided_by_humans": sum(1 for pid in res.decided if pid in pending),
        "conflicts": sum(1 for c in res.conflicts if c["pair_id"] in pending), "unknown_verdicts": len(res.unknown),
        "verdicts_on_auto_pairs": len(on_auto), "still_pending": labels["pending_review"],
        "pending_without_verdict": sum(1 for pid in res.no_verdict if pid in pending),
        "verdicts_read": len(verdicts.verdicts),
    }
    return final, summary


@pytest.mark.parametrize("export_format", ["label_studio_json", "jsonl_records"])
def test_form_pairs_streaming_matches_the_in_memory_fold(mined, tmp_path, export_format):
    votes = verdict_votes(mined)
    path = tmp_path / ("export.json" if export_format == "label_studio_json" else "records.jsonl")
    if export_format == "label_studio_json":
        path.write_text(json.dumps(label_studio_export(votes), indent=2))
    else:
        path.write_text("".join(json.dumps({"pair_id": p, "verdict": v, "annotator": a}) + "\n" for p, v, a in votes))

    summary = form_final_pairs(mined, path)
    expected_rows, expected_summary = in_memory_fold(mined, path)
    table = pq.read_table(mined / "final_pairs/pairs.parquet")
    assert table.schema.equals(PAIR)
    assert table.to_pylist() == expected_rows  # same rows, same order, first row of a repeated id
    assert {k: summary[k] for k in expected_summary} == expected_summary
    assert summary["decided_by_humans"] > 100 and summary["conflicts"] > 10 and summary["unknown_verdicts"] == 5
    assert summary["verdicts_on_auto_pairs"] > 10 and summary["pairs"] == 3000
    conflicts = [json.loads(x) for x in (mined / "final_pairs/conflicts.jsonl").read_text().splitlines()]
    assert len(conflicts) == summary["conflicts"] and all(c["votes"]["Same"] == c["votes"]["Different"] for c in conflicts)
    assert not list((mined / "final_pairs").glob(".*"))  # no temp file left


def test_review_writer_streams_from_parquet_and_is_unchanged_on_rerun(mined, tmp_path):
    review = tmp_path / "review"
    counts = write_review_outputs(pending_pairs(mined / "pairs"), review, "proj", "t0")
    first = {f.name: f.read_bytes() for f in review.iterdir()}

    rows: dict[str, dict] = {}  # what goes to review: pending pairs and gold questions, first row of an id wins
    for f in sorted((mined / "pairs").glob("*.parquet")):
        for r in pq.read_table(f).to_pylist():
            if r["label"] == "pending_review" or gold_answer(r, ReviewConfig()) is not None:
                rows.setdefault(r["pair_id"], r)
    pending = [r for r in rows.values() if r["label"] == "pending_review"]
    gold = {r["pair_id"]: gold_answer(r, ReviewConfig()) for r in rows.values() if r["label"] != "pending_review"}
    image = lambda p: f"{p['pair_id']}.png"  # noqa: E731
    assert first["tasks.json"] == (json.dumps(tasks_json(rows.values(), image), indent=2, ensure_ascii=False) + "\n").encode()
    expected_records = review_records(pending, "proj", "t0")  # gold questions get no record
    assert first["records.jsonl"] == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in expected_records).encode()
    assert counts["added"] == counts["total"] == len(pending) > 500
    assert read_gold(review / "gold.jsonl") == gold and counts["gold"] == len(gold) > 0

    write_review_outputs(pending_pairs(mined / "pairs"), review, "proj", "t1")
    assert {f.name: f.read_bytes() for f in review.iterdir()} == first  # byte-identical, nothing appended

    # An answered record survives; a pair mined later is appended after the existing ones.
    lines = (review / "records.jsonl").read_text().splitlines()
    lines[7] = json.dumps(json.loads(lines[7]) | {"segment1_image_1": "yes", "status": "completed"}, ensure_ascii=False)
    (review / "records.jsonl").write_text("\n".join(lines) + "\n")
    late = pair_row(random.Random(3), "video_999", 0, "pending_review")
    pq.write_table(table_from_rows([late], PAIR), mined / "pairs" / "video_999.parquet")
    counts = write_review_outputs(pending_pairs(mined / "pairs"), review, "proj", "t2")
    records = [json.loads(x) for x in (review / "records.jsonl").read_text().splitlines()]
    tasks = json.loads((review / "tasks.json").read_text())
    assert counts["added"] == 1 and records[7]["segment1_image_1"] == "yes" and records[-1]["pair_id"] == late["pair_id"]
    assert [t["data"]["pair_id"] for t in tasks if t["data"]["pair_id"] not in gold] == [r["pair_id"] for r in records]
    assert not list(review.glob(".*.tmp"))


def test_json_array_stream_across_chunk_edges():
    items = [{"id": i, "n": 10 ** (i % 12), "s": "é\n" * (i % 3), "l": [1.5, None, True]} for i in range(200)] + [12345678]
    text = json.dumps(items, indent=1)
    for chunk in (1, 7, 64, 1 << 20):  # cut inside strings, numbers and literals
        assert list(iter_json_array(io.StringIO(text), chunk_chars=chunk)) == items
    assert list(iter_json_array(io.StringIO(" [ ] \n"), chunk_chars=2)) == []
    buf = io.StringIO()
    writer = JsonArrayWriter(buf)
    for it in items:
        writer.add(it)
    writer.close()
    assert buf.getvalue() == json.dumps(items, indent=2, ensure_ascii=False)

    bad = text.replace('"id": 150', '"id": 150,,')
    with pytest.raises(JsonStreamError) as err:
        list(iter_json_array(io.StringIO(bad), chunk_chars=16))
    assert err.value.lineno == bad[: bad.index(",,")].count("\n") + 1
    for not_array in ('{"a": 1}', "", "[1, 2] 3", "[1 2]"):
        with pytest.raises(JsonStreamError):
            list(iter_json_array(io.StringIO(not_array)))
