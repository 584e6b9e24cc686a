"""Gold questions, annotation QA and adjudication on a Label Studio JSON export with several annotators.

The export is built here in Label Studio's own export format (the real server's round trip is
tests/test_label_studio_server.py); the annotators are simulated with known error rates, so the QA figures have a
right answer to be checked against."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from reid_ray.config import ReviewConfig
from reid_ray.review.gold import GOLD_FILE, gold_answer
from reid_ray.review.label_studio import write_review_outputs
from reid_ray.review.verdicts import form_final_pairs
from reid_ray.schemas import PAIR, table_from_rows

ROOT = Path(__file__).resolve().parents[1]
ANNOTATORS = {"ann@x": 0.97, "bob@x": 0.9, "eve@x": 0.5}  # chance of a right answer; eve clicks at random


def pair(pid: str, label: str, confidence: float, kind: str = "match") -> dict:
    def side(s: str) -> dict:
        return {f"{s}_video_id": "v", f"{s}_frame": 10, f"{s}_t_s": 0.4, f"{s}_bbox": [1.0, 2.0, 30.0, 90.0],
                f"{s}_candidate_id": f"{pid}-{s}", f"{s}_track_id": 1, f"{s}_score": 0.9}

    return {"pair_id": pid, "label": label, "confidence": confidence, "verified_by": None if label == "pending_review" else "auto",
            "gap_s": 5.0, "category": "person", "license": "CC-BY-4.0", "clip_pair_id": "cp", "similarity": 0.5, "kind": kind,
            **side("a"), **side("b")}


def test_gold_questions_are_sure_auto_matches_picked_by_a_stable_share():
    cfg = ReviewConfig(gold_share=0.25, gold_min_confidence=0.98)
    sure_same = [pair(f"s{i}", "identical", 0.99) for i in range(4000)]
    picked = [p for p in sure_same if gold_answer(p, cfg) == "Same"]
    assert 0.22 < len(picked) / len(sure_same) < 0.28  # the share, by a hash of the pair id
    assert [p["pair_id"] for p in sure_same if gold_answer(p, cfg)] == [p["pair_id"] for p in picked]  # stable
    rejected = [pair(f"r{i}", "same_category_different_instance", 0.01) for i in range(400)]
    assert {gold_answer(p, cfg) for p in rejected} == {"Different", None}
    never = [pair("a", "identical", 0.97), pair("b", "pending_review", 0.99), pair("c", "identical", float("nan")),
             pair("d", "unrelated", 1.0, kind="unrelated"), pair("e", "same_category_different_instance", 0.99, kind="hard_negative")]
    assert all(gold_answer(p, ReviewConfig(gold_share=1.0)) is None for p in never)
    assert gold_answer(pair("s1", "identical", 0.99), ReviewConfig(gold_share=0.0)) is None


@pytest.fixture
def run(tmp_path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """A mined --out: 60 pending pairs (truth known to the test) and 200 sure auto matches, some of them gold;
    its review files written by the job's own writer."""
    rng = random.Random(11)
    truth = {f"p{i:02d}": rng.choice(["Same", "Different"]) for i in range(60)}
    rows = [pair(pid, "pending_review", 0.6) for pid in truth]
    rows += [pair(f"g{i:03d}", "identical", 0.995) if i % 2 else pair(f"g{i:03d}", "same_category_different_instance", 0.004)
             for i in range(200)]
    out = tmp_path / "out"
    (out / "pairs").mkdir(parents=True)
    pq.write_table(table_from_rows(rows, PAIR), out / "pairs" / "v.parquet")
    cfg = ReviewConfig(gold_share=0.15)
    (out / "_run.json").write_text(json.dumps({"config": {"review": cfg.model_dump(mode="json")}}))
    reviewed = [r | ({"gold": g} if (g := gold_answer(r, cfg)) else {}) for r in rows if r["label"] == "pending_review" or gold_answer(r, cfg)]
    write_review_outputs(reviewed, out / "review", "proj", "t0")
    gold = {json.loads(x)["pair_id"]: json.loads(x)["expected"] for x in (out / "review" / GOLD_FILE).read_text().splitlines()}
    return out, truth, gold


def export(tasks: list[dict], answers: dict[str, dict[str, str]], seconds: dict[str, float], adjudication: bool = False) -> list[dict]:
    """Label Studio's JSON export of ``tasks``: one annotation per annotator who answered, with lead_time."""
    out = []
    for i, t in enumerate(tasks):
        pid = t["data"]["pair_id"]
        anns = [{"id": 100 * i + k, "completed_by": {"id": k + 1, "email": who}, "was_cancelled": False,
                 "lead_time": seconds[who] * (1 + (i % 5) / 10), "result": [
                     {"from_name": "verdict", "to_name": "packet", "type": "choices", "value": {"choices": [ans[pid]]}}]}
                for k, (who, ans) in enumerate(answers.items()) if pid in ans]
        out.append({"id": i + 1, "data": t["data"] | ({"adjudication": True} if adjudication else {}), "annotations": anns})
    return out


def simulate(tasks: list[dict], truth: dict[str, str], seed: int) -> dict[str, dict[str, str]]:
    rng, flip = random.Random(seed), {"Same": "Different", "Different": "Same"}
    return {who: {t["data"]["pair_id"]: truth[t["data"]["pair_id"]] if rng.random() < p else flip[truth[t["data"]["pair_id"]]]
                  for t in tasks} for who, p in ANNOTATORS.items()}


def test_qa_flags_the_careless_annotator_and_drop_changes_the_outcome(run, tmp_path):
    out, truth, gold = run
    tasks = json.loads((out / "review/tasks.json").read_text())
    assert len(gold) >= 20 and {t["data"]["pair_id"] for t in tasks} == set(truth) | set(gold)
    answers = simulate(tasks, truth | gold, seed=5)
    seconds = {"ann@x": 9.0, "bob@x": 22.0, "eve@x": 41.0}
    (tmp_path / "export.json").write_text(json.dumps(export(tasks, answers, seconds)))

    flagged = form_final_pairs(out, tmp_path / "export.json")  # the run's own settings: flag
    qa = json.loads((out / "final_pairs/qa.json").read_text())
    people = qa["annotators"]
    assert qa["low_accuracy"] == ["eve@x"] == flagged["low_accuracy_annotators"] and people["eve@x"]["status"] == "flagged"
    assert people["ann@x"]["gold_accuracy"] >= 0.9 and people["eve@x"]["gold_accuracy"] < 0.8
    assert all(people[w]["gold_answered"] == len(gold) for w in ANNOTATORS)
    times = [a["lead_time"] for t in export(tasks, answers, seconds) for a in t["annotations"] if a["completed_by"]["email"] == "bob@x"]
    assert people["bob@x"]["median_s"] == pytest.approx(np.median(times), abs=1e-3)
    assert people["bob@x"]["p90_s"] == pytest.approx(np.percentile(times, 90), abs=1e-3)
    assert people["ann@x"]["within_target"] == 1.0 and people["eve@x"]["within_target"] == 0.0
    cohen = {tuple(c["annotators"]): c["kappa"] for c in qa["agreement"]["cohen"]}
    assert cohen[("ann@x", "bob@x")] > 0.6 and abs(cohen[("ann@x", "eve@x")]) < 0.3
    assert qa["agreement"]["fleiss"]["raters_per_item"] == 3 and qa["agreement"]["fleiss"]["items"] == len(tasks)
    assert flagged["verdicts_dropped"] == 0 and flagged["gold_verdicts"] == 3 * len(gold)

    def wrong(summary_out: Path) -> int:
        final = {r["pair_id"]: r for r in pq.read_table(summary_out / "final_pairs/pairs.parquet").to_pylist()}
        decided = [pid for pid in truth if final[pid]["label"] != "pending_review"]
        assert all(final[pid]["verified_by"] == "human" for pid in decided)
        assert all(final[g]["verified_by"] == "auto" for g in gold)  # a gold verdict never changes its pair
        return sum((final[pid]["label"] == "identical") != (truth[pid] == "Same") for pid in decided)

    wrong_flagged = wrong(out)
    dropped = form_final_pairs(out, tmp_path / "export.json", ReviewConfig(on_low_accuracy="drop"))
    assert dropped["verdicts_dropped"] == len(tasks) and dropped["low_accuracy_annotators"] == ["eve@x"]
    assert json.loads((out / "final_pairs/qa.json").read_text())["annotators"]["eve@x"]["status"] == "dropped"
    # Without eve, ann and bob tie where they disagree (conflicts) instead of eve breaking ties at random.
    assert dropped["conflicts"] > 0 and wrong(out) <= wrong_flagged


def test_adjudication_round_trip_is_idempotent(run, tmp_path):
    out, truth, gold = run
    tasks = json.loads((out / "review/tasks.json").read_text())
    first = [t for t in tasks if t["data"]["pair_id"] in truth]
    # Two annotators who disagree on every fourth pair: those are ties.
    answers = {"ann@x": {t["data"]["pair_id"]: truth[t["data"]["pair_id"]] for t in first},
               "bob@x": {t["data"]["pair_id"]: truth[t["data"]["pair_id"]] if i % 4 else {"Same": "Different", "Different": "Same"}[truth[t["data"]["pair_id"]]]
                         for i, t in enumerate(first)}}
    round1 = tmp_path / "round1.json"
    round1.write_text(json.dumps(export(first, answers, {"ann@x": 10.0, "bob@x": 12.0})))
    s1 = form_final_pairs(out, round1)
    ties = [t for i, t in enumerate(first) if not i % 4]
    assert s1["conflicts"] == s1["adjudication_tasks"] == len(ties) and s1["decided_by_humans"] == len(first) - len(ties)
    adj_tasks = json.loads((out / "final_pairs/adjudication_tasks.json").read_text())
    assert [t["data"]["pair_id"] for t in adj_tasks] == [t["data"]["pair_id"] for t in ties]
    assert all(t["data"]["adjudication"] and t["data"]["image"] == f"{t['data']['pair_id']}.png" for t in adj_tasks)
    assert adj_tasks[0]["data"]["first_round"] == "Same 1, Different 1"

    # The adjudicator answers the adjudication tasks (one of them Unsure: it stays a conflict) and says the
    # opposite of both first-round voters' majority on none: their verdict wins.
    ruling = {t["data"]["pair_id"]: truth[t["data"]["pair_id"]] for t in adj_tasks[1:]} | {adj_tasks[0]["data"]["pair_id"]: "Unsure"}
    round2 = tmp_path / "round2.json"
    round2.write_text(json.dumps(export(adj_tasks, {"ann@x": ruling}, {"ann@x": 30.0})))
    s2 = form_final_pairs(out, [round1, round2])
    assert s2["decided_by_adjudication"] == len(ties) - 1 and s2["conflicts"] == s2["adjudication_tasks"] == 1
    final = {r["pair_id"]: r for r in pq.read_table(out / "final_pairs/pairs.parquet").to_pylist()}
    for t in adj_tasks[1:]:
        pid = t["data"]["pair_id"]
        assert (final[pid]["label"] == "identical") == (truth[pid] == "Same") and final[pid]["verified_by"] == "human"
    records = [json.loads(x) for x in (out / "review/records.jsonl").read_text().splitlines()]
    done = {r["pair_id"]: r for r in records if r["status"] == "completed"}
    assert len(done) == s2["records_completed"] == len(first) - 1
    assert all(done[pid]["segment1_image_1"] == {"Same": "yes", "Different": "no"}[truth[pid]] for pid in done)
    assert {r["status"] for r in records if r["pair_id"] not in done} == {"pending"}

    # Rerunning the same round changes nothing, byte for byte (and the CLI reads several files the same way).
    files = ["final_pairs/pairs.parquet", "final_pairs/adjudication_tasks.json", "final_pairs/qa.json", "review/records.jsonl"]
    before = {f: (out / f).read_bytes() for f in files}
    cmd = [sys.executable, str(ROOT / "jobs/form_pairs.py"), "--out", str(out), "--verdicts", str(round1), str(round2)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert f"{len(ties) - 1} by adjudication" in proc.stdout
    assert {f: (out / f).read_bytes() for f in files} == before
