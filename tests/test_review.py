"""Review packets on real frames, Label Studio files, verdict ingestion and the form_pairs job."""
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
from reid_ray.io import write_table_atomic
from reid_ray.review.label_studio import labeling_config_xml, review_records, write_review_outputs
from reid_ray.review.packets import BOX_RGB, render_pair_row
from reid_ray.review.verdicts import VerdictFileError, read_verdicts, resolve
from reid_ray.schemas import PAIR, table_from_rows

ROOT = Path(__file__).resolve().parents[1]


def pair(pid: str, label: str = "pending_review", category: str = "person", frames=(80, 160)) -> dict:
    side = lambda s, f, box: {f"{s}_video_id": "v", f"{s}_frame": f, f"{s}_t_s": f / 25, f"{s}_bbox": box, f"{s}_candidate_id": f"c{s}{pid}", f"{s}_track_id": 1}  # noqa: E731
    return {
        "pair_id": pid, "label": label, "confidence": 0.9, "verified_by": "human" if label == "pending_review" else "auto",
        "gap_s": 3.2, "category": category, "license": "CAVIAR-research", "clip_pair_id": "cp", "similarity": 0.9, "kind": "match",
        **side("a", frames[0], [306.0, 66.0, 333.0, 118.0]), **side("b", frames[1], [229.0, 87.0, 247.0, 140.0]),
    }


def frames_of(path, indices):
    cap, out, i = cv2.VideoCapture(str(path)), {}, 0
    while len(out) < len(indices):
        ok, f = cap.read()
        if not ok:
            break
        if i in indices:
            out[i] = f[:, :, ::-1].copy()
        i += 1
    return out


def test_packet_png_on_real_frames(tmp_path):
    fr = frames_of(require_shared("video/caviar/OneLeaveShopReenter1front.mpg"), [80, 160])
    path = render_pair_row(pair("p1"), fr[80], fr[160], tmp_path)
    img = cv2.imread(str(path))[:, :, ::-1]
    assert path.name == "p1.png" and img.shape[0] >= 256 and img.shape[1] > img.shape[0]
    assert (np.abs(img.astype(int) - BOX_RGB).sum(-1) < 30).sum() > 200  # the boxes are drawn


def test_label_studio_files_and_records(tmp_path):
    root = ET.fromstring(labeling_config_xml())
    choices = [(c.get("value"), c.get("hotkey")) for c in root.iter("Choice")]
    assert choices == [("Same", "1"), ("Different", "2"), ("Unsure", "3")]
    recs = review_records([pair("p1", category="face")], "proj", "2026-01-01T00:00:00")
    r = recs[0]
    assert set(r) >= {"project_title", "classification_id", "segment", "created_at", "status"}
    assert uuid.UUID(r["classification_id"]) and r["segment"][0] == {"bbox": [306.0, 66.0, 333.0, 118.0], "class": "face", "score": 0.9}
    write_review_outputs([pair("p1"), pair("p2")], tmp_path, "proj", "t0")
    first = {f: (tmp_path / f).read_bytes() for f in ("tasks.json", "records.jsonl", "labeling_config.xml")}
    write_review_outputs([pair("p2"), pair("p1")], tmp_path, "proj", "t1")
    assert first == {f: (tmp_path / f).read_bytes() for f in first}  # idempotent, no duplicates
    write_review_outputs([pair("p3")], tmp_path, "proj", "t2")
    assert [t["data"]["pair_id"] for t in json.loads((tmp_path / "tasks.json").read_text())] == ["p1", "p2", "p3"]


def ls_task(pid, *choices, cancelled=False):
    anns = [{"was_cancelled": cancelled, "result": [{"from_name": "verdict", "to_name": "packet", "type": "choices", "value": {"choices": [c]}}]} for c in choices]
    return {"data": {"pair_id": pid}, "annotations": anns}


def test_majority_conflicts_unknown(tmp_path):
    f = tmp_path / "export.json"
    f.write_text(json.dumps([ls_task("p1", "Same", "Same", "Different"), ls_task("p2", "Same", "Different"), ls_task("p3", "Unsure"), ls_task("zz", "Same"), ls_task("p4", "Different", cancelled=True)]))
    res = resolve(read_verdicts(f), {"p1", "p2", "p3", "p4"})
    assert res.decided == {"p1": "Same"} and set(res.conflicts) == {"p2", "p3"} and set(res.unknown) == {"zz"}
    j = tmp_path / "records.jsonl"
    j.write_text(json.dumps({"pair_id": "p1", "verdict": "no"}) + "\n" + json.dumps({"pair_id": "p2", "verdict": None}) + "\n")
    assert read_verdicts(j).votes == {"p1": ["Different"]}


@pytest.mark.parametrize(
    "content, where",
    [('{"pair_id": "p1", "verdict": "Same"}\n{"pair_id": "p1", "verdict": "maybe"}\n', "line 2"), ('{"pair_id": "p1"\n', "line 1"), ('[{"data": {}}]', "task 0")],
)
def test_malformed_verdicts_name_the_line(tmp_path, content, where):
    f = tmp_path / ("v.json" if content.startswith("[") else "v.jsonl")
    f.write_text(content)
    with pytest.raises(VerdictFileError, match=where):
        read_verdicts(f)


def test_form_pairs_job(tmp_path):
    out = tmp_path / "out"
    rows = [pair("p1"), pair("p2"), pair("p3", category="person|product"), pair("a1", label="identical")]
    write_table_atomic(table_from_rows(rows, PAIR), out / "pairs" / "v.parquet")
    verdicts = tmp_path / "v.jsonl"
    verdicts.write_text("".join(json.dumps({"pair_id": p, "verdict": v}) + "\n" for p, v in [("p1", "Same"), ("p3", "Different"), ("p2", "Same"), ("p2", "Different"), ("ghost", "Same")]))
    proc = subprocess.run([sys.executable, str(ROOT / "jobs/form_pairs.py"), "--out", str(out), "--verdicts", str(verdicts)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    final = {r["pair_id"]: r for r in pq.read_table(out / "final_pairs/pairs.parquet").to_pylist()}
    assert final["p1"]["label"] == "identical" and final["p1"]["verified_by"] == "human"
    assert final["p3"]["label"] == "unrelated" and final["p2"]["label"] == "pending_review"
    assert final["a1"]["label"] == "identical" and final["a1"]["verified_by"] == "auto"
    summary = json.loads((out / "final_pairs/summary.json").read_text())
    assert summary["conflicts"] == 1 and summary["unknown_verdicts"] == 1 and summary["still_pending"] == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    proc = subprocess.run([sys.executable, str(ROOT / "jobs/form_pairs.py"), "--out", str(out), "--verdicts", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "line 1" in proc.stderr
