"""Review of uncertain pairs: packets on real CAVIAR frames, Label Studio files, verdict ingestion and the
form_pairs job end to end."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from _paths import require_shared

from reid_ray.review.label_studio import (
    completed_record,
    labeling_config_xml,
    review_records,
    tasks_json,
    write_review_outputs,
)
from reid_ray.review.packets import (
    BOX_RGB,
    MAX_UPSCALE,
    render_pair_png,
    render_pair_row,
)
from reid_ray.review.verdicts import (
    VerdictFileError,
    human_label,
    read_verdicts,
    resolve,
)
from reid_ray.schemas import PAIR, table_from_rows

ROOT = Path(__file__).resolve().parents[1]
VIDEO = "video/caviar/OneLeaveShopReenter1front.mpg"
# The same person leaving the shop (frame 200) and coming back (frame 320); boxes from background subtraction.
BOX_A, BOX_B = [223.0, 102.0, 244.0, 161.0], [227.0, 95.0, 247.0, 153.0]


DETECTOR_SCORES = {"a": 0.91234, "b": 0.6}


def make_pair(pid: str, label: str = "pending_review", category: str = "person", confidence: float = 0.8123) -> dict:
    def side(s: str, frame: int, box: list[float]) -> dict:
        return {f"{s}_video_id": "caviar", f"{s}_frame": frame, f"{s}_t_s": frame / 25, f"{s}_bbox": box,
                f"{s}_candidate_id": f"{pid}-{s}", f"{s}_track_id": 1, f"{s}_score": DETECTOR_SCORES[s]}

    return {
        "pair_id": pid, "label": label, "confidence": confidence, "verified_by": None if label == "pending_review" else "auto",
        "gap_s": 4.8, "category": category, "license": "CAVIAR-research", "clip_pair_id": "cp0", "similarity": 0.8,
        "kind": "match", **side("a", 200, BOX_A), **side("b", 320, BOX_B),
    }


@pytest.fixture(scope="module")
def frames() -> dict[int, np.ndarray]:
    """RGB frames 200 and 320, read sequentially (MPEG-1 seeking is not frame-exact)."""
    cap, out, i = cv2.VideoCapture(str(require_shared(VIDEO))), {}, 0
    while len(out) < 2:
        ok, f = cap.read()
        if not ok:
            pytest.skip(f"{VIDEO}: could not decode frame {i}")
        if i in (200, 320):
            out[i] = cv2.cvtColor(f, cv2.COLOR_BGR2RGB)
        i += 1
    return out


def green_extent(img: np.ndarray, rows: slice, cols: slice) -> tuple[int, int]:
    """Width and height of the exactly-box-coloured pixels in a region."""
    ys, xs = np.nonzero(np.all(img[rows, cols] == BOX_RGB, axis=2))
    assert len(ys), "no pixel of the box colour in this region"
    return xs.max() - xs.min() + 1, ys.max() - ys.min() + 1


# ---------------------------------------------------------------- packets


def test_packet_png_on_real_frames(tmp_path, frames):
    path = render_pair_row(make_pair("p1"), frames[200], frames[320], tmp_path)
    assert path == tmp_path / "p1.png" and path.stat().st_size > 10_000
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    assert 256 + 100 < h < 700 and 2 * 200 < w < 1200  # two thumbnails side by side, header, captions, overviews
    # Side A's thumbnail: the box, upscaled by 256 / (59 + 2 * 48), drawn in the box colour.
    zoom = 256 / (BOX_A[3] - BOX_A[1] + 2 * 48)
    bw, bh = green_extent(img, slice(0, 56 + 256), slice(0, w // 2))
    line = 2  # the outer edges of a 2 px line lie one pixel outside the box on each side
    assert abs(bw - (BOX_A[2] - BOX_A[0]) * zoom - line) <= 2 and abs(bh - (BOX_A[3] - BOX_A[1]) * zoom - line) <= 2
    green_extent(img, slice(0, 56 + 256), slice(w // 2, w))  # side B has its box too
    green_extent(img, slice(56 + 256, h), slice(0, w))  # and the overviews


def test_tiny_box_shows_context_instead_of_mush(tmp_path, frames):
    mask = np.zeros(frames[200].shape[:2], bool)
    mask[130:134, 100:104] = True
    path = render_pair_png(frames[200], [100, 130, 104, 134], frames[320], BOX_B, tmp_path / "t.png",
                           title="Same product? conf 0.55 · gap 120 s", context_px=0, mask_a=mask)
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    bw, bh = green_extent(img, slice(0, 56 + 256), slice(0, img.shape[1] // 2))
    assert bw <= 4 * MAX_UPSCALE + 3 and bh <= 4 * MAX_UPSCALE + 3  # 4 px box: at most 6x, not 64x


# ---------------------------------------------------------------- Label Studio


def test_labeling_config_is_valid_xml_with_required_verdict():
    root = ET.fromstring(labeling_config_xml())
    image = root.find("Image")
    verdict = root.find("Choices")
    assert image is not None and image.get("value") == "$image"
    assert verdict.get("name") == "verdict" and verdict.get("toName") == image.get("name")
    assert verdict.get("required") == "true"
    assert [(c.get("value"), c.get("hotkey")) for c in verdict.iter("Choice")] == [("Same", "1"), ("Different", "2"), ("Unsure", "3")]


def test_tasks_carry_the_keys_the_config_reads():
    (task,) = tasks_json([make_pair("p1")], lambda p: f"s3://b/review/{p['pair_id']}.png")
    # No confidence: it would anchor the annotator and give gold questions away.
    assert task == {"data": {"image": "s3://b/review/p1.png", "pair_id": "p1", "category": "person", "gap_s": 4.8}}


def test_review_records_exact_form_and_deterministic():
    pairs = [make_pair("p1", category="face", confidence=0.88234), make_pair("p2", category="person|product")]
    recs = review_records(pairs, "proj", "2026-01-01T00:00:00Z")
    r = recs[0]
    # The seed's record field for field, then our pair id and packet.
    assert list(r) == ["project_title", "classification_id", "segment1_image_1", "segment", "created_at", "status", "pair_id", "image"]
    assert uuid.UUID(r["classification_id"]).version == 5
    # Each side's detector score, not the pair's confidence (0.88234).
    assert r["segment"] == [{"bbox": BOX_A, "class": "face", "score": 0.912}, {"bbox": BOX_B, "class": "face", "score": 0.6}]
    assert (r["status"], r["segment1_image_1"], r["image"], r["project_title"]) == ("pending", None, "p1.png", "proj")
    assert completed_record(r, "Different") == r | {"segment1_image_1": "no", "status": "completed"}
    assert [s["class"] for s in recs[1]["segment"]] == ["person", "product"]  # each side its own category
    assert review_records(pairs, "proj", "2026-01-01T00:00:00Z") == recs
    assert recs[0]["classification_id"] != recs[1]["classification_id"]


def test_write_review_outputs_is_idempotent_and_merges(tmp_path):
    files = ("tasks.json", "records.jsonl", "labeling_config.xml")
    write_review_outputs([make_pair("p1"), make_pair("p2"), make_pair("p1")], tmp_path, "proj", "t0")
    first = {f: (tmp_path / f).read_bytes() for f in files}
    write_review_outputs([make_pair("p2"), make_pair("p1")], tmp_path, "proj", "t1")
    assert {f: (tmp_path / f).read_bytes() for f in files} == first  # same pairs: byte-identical, no duplicates
    # An annotator's answer survives a rerun that adds pairs.
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    answered = json.loads(lines[0]) | {"segment1_image_1": "yes", "status": "completed"}
    (tmp_path / "records.jsonl").write_text("\n".join([json.dumps(answered), *lines[1:]]) + "\n")
    write_review_outputs([make_pair("p3"), make_pair("p1")], tmp_path, "proj", "t2")
    tasks = json.loads((tmp_path / "tasks.json").read_text())
    records = [json.loads(x) for x in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert [t["data"]["pair_id"] for t in tasks] == [r["pair_id"] for r in records] == ["p1", "p2", "p3"]
    assert records[0]["segment1_image_1"] == "yes" and records[2]["created_at"] == "t2"
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


# ---------------------------------------------------------------- verdicts


def ls_task(pid: str, *answers: tuple[str, int], cancelled: bool = False) -> dict:
    """A task of a Label Studio JSON export: one annotation per (choice, user id)."""
    return {"id": 1, "data": {"pair_id": pid, "image": f"{pid}.png"}, "annotations": [
        {"completed_by": user, "was_cancelled": cancelled,
         "result": [{"from_name": "verdict", "to_name": "packet", "type": "choices", "value": {"choices": [choice]}}]}
        for choice, user in answers]}


def test_read_label_studio_export(tmp_path):
    f = tmp_path / "export.json"
    f.write_text(json.dumps([ls_task("p1", ("Same", 1), ("same", 2), ("Different", 3)),
                             ls_task("p2", ("Different", 1), cancelled=True),
                             ls_task("p3", ("Unsure", 1), ("UNSURE", 1)),  # one user twice: counted once
                             {"data": {"pair_id": "p4"}, "annotations": []}], indent=1))
    vs = read_verdicts(f)
    assert vs.votes == {"p1": ["Same", "Same", "Different"], "p3": ["Unsure"]} and vs.cancelled == 1


def test_read_jsonl_records(tmp_path):
    f = tmp_path / "records.jsonl"
    rows = [{"pair_id": "p1", "verdict": "yes", "annotator": "ann"}, {"pair_id": "p2", "verdict": "No"},
            {"pair_id": "p3", "verdict": None}, {"pair_id": "p2", "verdict": "different"}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    vs = read_verdicts(f)
    assert vs.votes == {"p1": ["Same"], "p2": ["Different", "Different"]} and vs.unanswered == 1


def test_resolve_majority_ties_unsure_unknown(tmp_path):
    f = tmp_path / "v.jsonl"
    votes = [("p1", "Same"), ("p1", "Same"), ("p1", "Different"), ("p2", "Same"), ("p2", "Different"), ("p2", "Unsure"),
             ("p3", "Unsure"), ("p4", "Different"), ("p4", "Unsure"), ("ghost", "Same")]
    f.write_text("".join(json.dumps({"pair_id": p, "verdict": v}) + "\n" for p, v in votes))
    res = resolve(read_verdicts(f), [make_pair(p) for p in ("p1", "p2", "p3", "p4", "p5")])
    assert res.decided == {"p1": "Same", "p4": "Different"}  # Unsure is no vote
    assert {c["pair_id"]: c["votes"] for c in res.conflicts} == {
        "p2": {"Same": 1, "Different": 1, "Unsure": 1}, "p3": {"Same": 0, "Different": 0, "Unsure": 1}}
    assert [(u["pair_id"], u["source"]) for u in res.unknown] == [("ghost", f"{f} line 10")]
    assert res.no_verdict == ["p5"]


def test_human_labels():
    assert human_label("Same", "person") == "identical"
    assert human_label("Different", "person") == "same_category_different_instance"
    assert human_label("Different", "person|product") == "unrelated"


@pytest.mark.parametrize("name, content, expected", [
    ("v.jsonl", '{"pair_id": "p1", "verdict": "Same"}\n\n{"pair_id": "p1", "verdict": "maybe"}\n', "v.jsonl line 3: verdict 'maybe'"),
    ("v.jsonl", '{"pair_id": "p1", "verdict": "Same"}\n{"pair_id": "p1"\n', "v.jsonl line 2: not valid JSON"),
    ("v.jsonl", '{"verdict": "Same"}\n', "v.jsonl line 1: pair_id missing"),
    ("v.jsonl", '{"pair_id": "p1", "label": "Same"}\n', "v.jsonl line 1: no 'verdict' or 'segment1_image_1' key"),
    ("v.json", json.dumps([ls_task("p1", ("Same", 1)), {"data": {}}]), "v.json task 1: data.pair_id missing"),
    ("v.json", json.dumps([ls_task("p1", ("Nope", 1))]), "v.json task 0 annotation 0: verdict 'Nope'"),
    ("v.json", '[{"data": {"pair_id": "p1"},\n "annotations": [}]', "v.json line 2: not valid JSON"),
])
def test_malformed_verdicts_name_the_line(tmp_path, name, content, expected):
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(VerdictFileError) as err:
        read_verdicts(f)
    assert str(tmp_path / expected) in str(err.value)


# ---------------------------------------------------------------- form_pairs end to end


def run_form_pairs(out: Path, verdicts: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "jobs/form_pairs.py"), "--out", str(out), "--verdicts", str(verdicts)]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_form_pairs_job(tmp_path):
    out = tmp_path / "out"
    (out / "pairs").mkdir(parents=True)
    rows = [make_pair("p1"), make_pair("p2"), make_pair("p3", category="person|product"), make_pair("p4"),
            make_pair("a1", label="identical", confidence=0.95)]
    pq.write_table(table_from_rows(rows, PAIR), out / "pairs" / "x.parquet")
    verdicts = tmp_path / "v.jsonl"
    votes = [("p1", "Same"), ("p3", "no"), ("p2", "Same"), ("p2", "Different"), ("ghost", "Same"), ("a1", "Different")]
    verdicts.write_text("".join(json.dumps({"pair_id": p, "verdict": v}) + "\n" for p, v in votes))

    proc = run_form_pairs(out, verdicts)
    assert proc.returncode == 0, proc.stderr
    assert "still pending: 2" in proc.stdout
    table = pq.read_table(out / "final_pairs/pairs.parquet")
    assert table.schema.equals(PAIR)
    final = {r["pair_id"]: r for r in table.to_pylist()}
    assert (final["p1"]["label"], final["p1"]["verified_by"]) == ("identical", "human")
    assert final["p3"]["label"] == "unrelated"
    assert final["p2"]["label"] == final["p4"]["label"] == "pending_review"  # tie; no verdict
    assert (final["a1"]["label"], final["a1"]["verified_by"]) == ("identical", "auto")  # auto kept as it was
    conflicts = [json.loads(x) for x in (out / "final_pairs/conflicts.jsonl").read_text().splitlines()]
    assert [(c["pair_id"], c["votes"]) for c in conflicts] == [("p2", {"Same": 1, "Different": 1, "Unsure": 0})]
    unknown = [json.loads(x) for x in (out / "final_pairs/unknown_verdicts.jsonl").read_text().splitlines()]
    assert [u["pair_id"] for u in unknown] == ["ghost"]
    s = json.loads((out / "final_pairs/summary.json").read_text())
    assert s["by_label"] == {"identical": 2, "same_category_different_instance": 0, "unrelated": 1, "pending_review": 2}
    assert s["by_verified_by"] == {"auto": 1, "human": 2, "nobody_yet": 2}  # p2 (tie) and p4: nobody decided
    assert (s["conflicts"], s["unknown_verdicts"], s["still_pending"], s["verdicts_on_auto_pairs"]) == (1, 1, 2, 1)


def test_form_pairs_job_input_errors_exit_2(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"pair_id": "p1", "verdict": "Same"}\nnot json\n')
    proc = run_form_pairs(tmp_path / "nowhere", bad)
    assert proc.returncode == 2 and "pairs" in proc.stderr and "generate_pairs" in proc.stderr
    (tmp_path / "out/pairs").mkdir(parents=True)
    pq.write_table(table_from_rows([make_pair("p1")], PAIR), tmp_path / "out/pairs/x.parquet")
    proc = run_form_pairs(tmp_path / "out", bad)
    assert proc.returncode == 2 and f"{bad} line 2" in proc.stderr
    assert not (tmp_path / "out/final_pairs").exists()  # nothing half-written
