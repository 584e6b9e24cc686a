"""The pair-mining job end to end on a real local Ray cluster with real weights, on generated footage with exact
ground truth plus broken inputs: outputs, error records, resumability, and the precision of auto-accepted pairs."""
import json

import pyarrow.parquet as pq
import pytest

from _paths import require_shared
from reid_ray.config import ConfigError, load_config
from reid_ray.metrics.pairs import evaluate_pairs
from reid_ray.names import packet_file_name
from reid_ray.pairs_job import all_pairs, run_pairs_job
from reid_ray.review.gold import read_gold
from reid_ray.schemas import LABELS, PAIR
from reid_ray.video.synthetic import generate_corpus, load_ground_truth

pytestmark = pytest.mark.ray

SIDE_FIELDS = ("video_id", "frame", "t_s", "bbox")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    videos = generate_corpus(folder, n_videos=2, seed=11, n_frames=220, n_people=4)
    good = videos[0].video_path
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("this is not a video")
    (folder / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    (folder / "secret.mp4").write_bytes(good.read_bytes())  # a real video whose licence is not allowed
    lines = (folder / "manifest.csv").read_text().strip().splitlines()
    lines += ["empty,empty.mp4,synthetic", "notes,notes.mp4,synthetic", "truncated,truncated.mp4,synthetic", "secret,secret.mp4,proprietary"]
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return folder, {v.video_id: load_ground_truth(v.gt_dir) for v in videos}


@pytest.fixture(scope="module")
def cfg():
    overrides = [
        f"models_dir={require_shared('models').resolve()}",
        "clip_pairs.time_gap_s=6", "clip_pairs.pairs_per_video=3", "sampling.frames_per_clip=4",
    ]
    return load_config("configs/local.yaml", overrides)


@pytest.fixture(scope="module")
def first_run(ray_local, corpus, cfg, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    report = run_pairs_job(cfg, str(corpus[0] / "manifest.csv"), out)
    return out, report


def test_outputs_and_schema(first_run):
    out, report = first_run
    for d in ("clip_pairs", "candidates", "review", "pairs", "errors"):
        assert (out / d).is_dir()
    pairs = all_pairs(out)
    assert pairs.schema.equals(PAIR) and pairs.num_rows > 0
    rows = pairs.to_pylist()
    assert {r["label"] for r in rows} <= set(LABELS)
    for r in rows:
        # Nobody has decided a pending pair yet; the rest were decided by the run.
        assert r["verified_by"] == (None if r["label"] == "pending_review" else "auto") and r["license"] == "synthetic"
        for side in "ab":
            assert all(r[f"{side}_{f}"] is not None for f in SIDE_FIELDS)
            x1, y1, x2, y2 = r[f"{side}_bbox"]
            assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 360
        assert r["b_t_s"] - r["a_t_s"] == pytest.approx(r["gap_s"], abs=2.5)
    cand = pq.read_table(next((out / "candidates").rglob("*.parquet")))
    assert {"video_id", "frame", "t_s", "bbox", "mask_rle", "embedding", "keep", "reject_reason"} <= set(cand.column_names)
    card = report["dataset_card"]
    assert sum(card["by_label"].values()) == pairs.num_rows and card["by_category"] and card["by_gap_s"]
    assert card["by_verified_by"]["nobody_yet"] == card["by_label"].get("pending_review", 0)
    assert card["by_verified_by"]["human"] == 0  # no human has looked yet
    assert json.loads((out / "report.json").read_text())["routing"]["proposed_matches"] > 0


def test_review_queue_holds_pending_pairs_and_gold_questions_with_packets(first_run):
    out, _ = first_run
    rows = {r["pair_id"]: r for r in all_pairs(out).to_pylist()}
    tasks = json.loads((out / "review/tasks.json").read_text())
    gold = read_gold(out / "review/gold.jsonl")
    records = [json.loads(x) for x in (out / "review/records.jsonl").read_text().splitlines()]
    pending = {pid for pid, r in rows.items() if r["label"] == "pending_review"}
    assert {t["data"]["pair_id"] for t in tasks} == pending | set(gold) and {r["pair_id"] for r in records} == pending
    assert all((out / "review" / packet_file_name(t["data"]["pair_id"])).is_file() for t in tasks)  # each has its packet
    assert all(t["data"]["image"].endswith(packet_file_name(t["data"]["pair_id"])) for t in tasks)
    for pid, expected in gold.items():  # a gold question is a sure auto-decided match
        assert rows[pid]["kind"] == "match" and rows[pid]["verified_by"] == "auto"
        assert expected == {"identical": "Same", "same_category_different_instance": "Different"}[rows[pid]["label"]]
    for rec in records:  # the seed's record: each side's detector score, not the pair's confidence
        pair = rows[rec["pair_id"]]
        assert [seg["score"] for seg in rec["segment"]] == [round(pair["a_score"], 3), round(pair["b_score"], 3)]
        assert rec["status"] == "pending" and rec["segment1_image_1"] is None


def test_bad_inputs_become_error_records(first_run):
    out, report = first_run
    errors = [r for p in sorted((out / "errors").rglob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    by_video = {e["video_id"]: e for e in errors}
    assert {"empty", "notes", "truncated"} <= set(by_video), errors
    assert any(e["error_type"] == "license" and "proprietary" in e["message"] for e in errors)
    assert report["videos"]["finished"] == 2  # the two good videos; the broken ones never crash the job


def test_report_gives_each_stage_rows_busy_and_idle_seconds(first_run):
    _, report = first_run
    stages = report["stages"]
    assert set(stages) == {"probe", "decode", "segment", "route"}
    assert stages["probe"]["rows"] == 5 and stages["route"]["rows"] == 5  # every usable video
    assert stages["decode"]["rows"] == stages["segment"]["rows"] == 6  # 2 videos x 3 clip pairs
    for s in stages.values():
        assert s["actors"] >= 1 and s["busy_s"] > 0 and s["idle_s"] >= 0
    assert stages["segment"]["busy_s"] > stages["decode"]["busy_s"]  # the models, not the decoder, are the work


def test_rerun_skips_finished_work_and_writes_no_duplicates(first_run, cfg, corpus):
    out, _ = first_run
    before = {p.name: p.read_bytes() for p in (out / "pairs").glob("*.parquet")}
    report = run_pairs_job(cfg, str(corpus[0] / "manifest.csv"), out)
    after = {p.name: p.read_bytes() for p in (out / "pairs").glob("*.parquet")}
    assert before == after
    ids = all_pairs(out).column("pair_id").to_pylist()
    assert len(ids) == len(set(ids))
    assert report["videos"]["processed_this_run"] == 3  # only the broken videos are tried again


def test_another_config_on_the_same_out_is_refused(first_run, cfg, corpus):
    out, _ = first_run
    other = cfg.model_copy(update={"proposal": cfg.proposal.model_copy(update={"accept_threshold": 0.99})})
    with pytest.raises(ConfigError, match="another configuration"):
        run_pairs_job(other, str(corpus[0] / "manifest.csv"), out)


def test_auto_identical_pairs_are_precise_on_synthetic_footage(first_run, corpus):
    out, report = first_run
    quality = evaluate_pairs(all_pairs(out).to_pylist(), corpus[1])
    print("synthetic pair quality:", json.dumps(quality, indent=1))
    ident = quality.get("identical/auto/match")
    assert ident and ident["correct"] + ident["wrong"] >= 3, quality
    assert ident["precision"] >= 0.95, quality
