"""IDF1/MOTA/HOTA through TrackEval's metric classes, pairwise tracklet scores, the CLI."""
from __future__ import annotations

import contextlib
import io
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from reid_ray.metrics.__main__ import main
from reid_ray.metrics.mot import (
    majority_identities,
    majority_identity_idf1,
    mot_metrics,
    pairwise_tracklet_scores,
)
from reid_ray.mot_format import MOT_COLUMNS, read_mot


def _write(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(",".join(str(v) for v in r) + "\n" for r in rows))


def _frame(rows) -> pd.DataFrame:
    """frame,id,x,y,w,h rows as read_mot would return them."""
    full = [list(r) + [1.0] + [math.nan] * 3 for r in rows]
    return pd.DataFrame(full, columns=list(MOT_COLUMNS)).astype({"frame": np.int64, "id": np.int64})


def _two_people(frames: int = 10, switch_at: int | None = None) -> list[list]:
    """Two far-apart people in every frame; with ``switch_at`` the second one's id changes (2 -> 3) there."""
    rows = []
    for f in range(1, frames + 1):
        second = 3 if switch_at is not None and f >= switch_at else 2
        rows += [[f, 1, 10, 10, 20, 40], [f, second, 200, 10, 20, 40]]
    return rows


# -------------------------------------------------------------------------------------------- metrics


def test_perfect_prediction_scores_one():
    gt = _frame(_two_people())
    pred = gt.assign(id=gt["id"].map({1: 40, 2: 7}))  # id values are arbitrary labels
    m = mot_metrics(gt, pred)
    assert m["IDF1"] == m["MOTA"] == m["HOTA"] == 1.0
    assert m["IDSW"] == m["FP"] == m["FN"] == 0


def test_one_identity_switch():
    m = mot_metrics(_frame(_two_people()), _frame(_two_people(switch_at=6)))
    # IDF1: the best one-to-one id match covers 10 + 5 of 20 boxes: IDTP 15, IDFP = IDFN = 5 -> 30 / 40.
    assert m["IDF1"] == pytest.approx(0.75)
    assert m["IDSW"] == 1 and m["MOTA"] == pytest.approx(1 - 1 / 20)
    # HOTA: detection is perfect (DetA 1); association 1 for person 1, 5/10 for each half of person 2 -> 0.75.
    assert m["DetA"] == pytest.approx(1.0) and m["AssA"] == pytest.approx(0.75)
    assert m["HOTA"] == pytest.approx(math.sqrt(0.75))


def test_misses_false_positives_and_zero_marked_ground_truth():
    gt = _frame(_two_people())
    pred = gt[~((gt["frame"] == 3) & (gt["id"] == 2))].copy()  # one miss
    pred.loc[(pred["frame"] == 4) & (pred["id"] == 1), "x"] += 15  # IoU 5/35 < 0.5: a miss and a false positive
    m = mot_metrics(gt, pred)
    assert (m["FN"], m["FP"], m["IDSW"]) == (2, 1, 0)
    assert m["MOTA"] == pytest.approx(1 - 3 / 20)
    ignored = gt.assign(conf=np.where(gt["id"] == 2, 0.0, 1.0))  # MOTChallenge: 7th column 0 = not evaluated
    m2 = mot_metrics(ignored, gt[gt["id"] == 1])
    assert m2["gt_dets"] == 10 and m2["MOTA"] == 1.0


def test_agrees_with_trackevals_own_motchallenge_pipeline(tmp_path):
    """The same scores as TrackEval's file-based MotChallenge2DBox evaluation of a noisy prediction."""
    import trackeval

    rng = np.random.default_rng(0)
    gt, pred = [], []
    for f in range(1, 31):
        for i in range(5):
            if rng.random() < 0.9:
                x = 50.0 * i + 2 * f
                gt.append([f, i + 1, x, 10, 20, 40, 1, 1, 1.0])
                if rng.random() < 0.85:
                    pid = 9 if (i == 2 and f >= 15) else (i + 2) % 5 + 1 if rng.random() < 0.1 else i + 1
                    pred.append([f, pid, x + rng.normal(0, 3), 10 + rng.normal(0, 3), 20, 40, 1, -1, -1, -1])
        if rng.random() < 0.3:
            pred.append([f, 20, rng.uniform(0, 300), 100, 20, 40, 1, -1, -1, -1])
    pred = list({(r[0], r[1]): r for r in pred}.values())  # one row per (frame, id)
    _write(tmp_path / "gt" / "seq1" / "gt" / "gt.txt", gt)
    _write(tmp_path / "tr" / "mine" / "data" / "seq1.txt", pred)

    dataset = trackeval.datasets.MotChallenge2DBox(
        {"GT_FOLDER": str(tmp_path / "gt"), "TRACKERS_FOLDER": str(tmp_path / "tr"), "SKIP_SPLIT_FOL": True,
         "SEQ_INFO": {"seq1": 30}, "PRINT_CONFIG": False}
    )
    evaluator = trackeval.Evaluator(
        {"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False, "OUTPUT_SUMMARY": False,
         "OUTPUT_DETAILED": False, "PLOT_CURVES": False, "TIME_PROGRESS": False}
    )
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
               trackeval.metrics.Identity({"PRINT_CONFIG": False})]
    with contextlib.redirect_stdout(io.StringIO()):
        res, _ = evaluator.evaluate([dataset], metrics)
    official = res["MotChallenge2DBox"]["mine"]["seq1"]["pedestrian"]

    ours = mot_metrics(read_mot(tmp_path / "gt" / "seq1" / "gt" / "gt.txt"), read_mot(tmp_path / "tr" / "mine" / "data" / "seq1.txt"))
    assert 0.3 < ours["HOTA"] < 0.9  # a real mix of errors, not a trivial case
    assert ours["HOTA"] == pytest.approx(float(np.mean(official["HOTA"]["HOTA"])), abs=1e-12)
    assert ours["MOTA"] == pytest.approx(official["CLEAR"]["MOTA"], abs=1e-12)
    assert ours["IDF1"] == pytest.approx(official["Identity"]["IDF1"], abs=1e-12)


def test_synthetic_ground_truth_reads_as_its_own_boxes(tmp_path):
    """gt.txt (0-based pixels, frames + 1) matches load_ground_truth; a relabelled copy scores 1, a merge less."""
    from reid_ray.video.synthetic import SyntheticSpec, generate, load_ground_truth

    video = generate(SyntheticSpec(video_id="v", width=160, height=120, n_frames=12, n_people=3), tmp_path)
    gt_df = read_mot(video.gt_path)
    truth = load_ground_truth(video.gt_dir)
    rows = []
    for f in range(truth.n_frames):
        for (x1, y1, x2, y2), tid in zip(truth.frames[f].boxes, truth.frames[f].track_ids):
            rows.append([f + 1, int(tid), x1, y1, x2 - x1, y2 - y1])
    from_masks = _frame(rows).sort_values(["frame", "id"]).reset_index(drop=True)
    cols = ["frame", "id", "x", "y", "w", "h"]
    pd.testing.assert_frame_equal(gt_df[cols].sort_values(["frame", "id"]).reset_index(drop=True), from_masks[cols], check_dtype=False)
    assert mot_metrics(gt_df, from_masks.assign(id=from_masks["id"] + 100))["IDF1"] == 1.0
    merged = mot_metrics(gt_df, from_masks.assign(id=from_masks["id"].replace({2: 1})))
    assert merged["IDF1"] < 1.0 and merged["MOTA"] == 1.0  # same boxes, one predicted id for two people


# ------------------------------------------------------------------------------------ tracklet pairs


def test_majority_identities_follow_box_matches_and_never_give_one_identity_twice_in_a_frame():
    """Truth: person 1 at x=10, person 2 at x=200, frames 1-10. Tracklets: 11 (person 1, frames 1-6) and 12 (person 1,
    7-10), fragments of one person; 13 (person 2, 1-7); 14 (frames 5-10): a box on nobody in 5-7, then person 2 in
    8-10. 14's best identity is 2, but 13 holds it in frames 5-7, so 14 keeps its own. 15, one box on person 2
    beside 13's, loses the one-to-one match to 13 and gets no vote."""
    gt = _frame(_two_people())
    pred = [[f, 11, 10, 10, 20, 40] for f in range(1, 7)] + [[f, 12, 10, 10, 20, 40] for f in range(7, 11)]
    pred += [[f, 13, 200, 10, 20, 40] for f in range(1, 8)]
    pred += [[f, 14, 400, 10, 20, 40] for f in range(5, 8)] + [[f, 14, 200, 10, 20, 40] for f in range(8, 11)]
    pred += [[1, 15, 206, 10, 20, 40]]  # IoU 0.54 with person 2, but 13's box matches exactly
    mapping = majority_identities(gt, _frame(pred))
    assert mapping[11] == mapping[12] == 1 and mapping[13] == 2
    assert mapping[14] < 0 and mapping[15] < 0 and mapping[14] != mapping[15]
    relabelled = _frame([[f, mapping[i], *box] for f, i, *box in pred])
    assert majority_identity_idf1(gt, _frame(pred)) == pytest.approx(mot_metrics(gt, relabelled)["IDF1"])
    assert majority_identity_idf1(gt, _frame(pred)) > mot_metrics(gt, _frame(pred))["IDF1"]  # fragments joined


def test_pairwise_tracklet_scores():
    s = pairwise_tracklet_scores({"a": 1, "b": 1, "c": 1, "d": 2, "e": 3}, {"a": "x", "b": "x", "c": "y", "d": "y"})
    # predicted pairs ab, ac, bc; true pairs ab, cd: TP ab, FP ac bc, FN cd ("e" is only predicted)
    assert s["precision"] == pytest.approx(1 / 3) and s["recall"] == pytest.approx(1 / 2) and s["f1"] == pytest.approx(0.4)
    assert (s["tracklets"], s["pred_only"], s["true_only"]) == (4, 1, 0)
    alone = pairwise_tracklet_scores({"a": 1, "b": 2}, {"a": 1, "b": 2})
    assert math.isnan(alone["precision"]) and math.isnan(alone["recall"])  # no pairs either way: undefined
    with pytest.raises(ValueError, match="share no tracklet"):
        pairwise_tracklet_scores({"a": 1}, {"b": 1})


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_prints_scores_and_writes_nothing(tmp_path, capsys):
    _write(tmp_path / "gt.txt", _two_people())
    _write(tmp_path / "pred.txt", _two_people(switch_at=6))
    (tmp_path / "p.json").write_text('{"t1": 5, "t2": 5, "t3": 6}')
    (tmp_path / "g.json").write_text('{"t1": 1, "t2": 1, "t3": 2}')
    before = sorted(tmp_path.iterdir())
    args = ["--gt", str(tmp_path / "gt.txt"), "--pred", str(tmp_path / "pred.txt")]
    assert main(args + ["--pred-map", str(tmp_path / "p.json"), "--gt-map", str(tmp_path / "g.json")]) == 0
    out = capsys.readouterr().out
    assert "IDF1  0.7500" in out and "MOTA  0.9500" in out and "HOTA  0.8660" in out
    assert "pairwise precision 1.0000  recall 1.0000  f1 1.0000" in out
    assert sorted(tmp_path.iterdir()) == before


def test_cli_exits_2_on_missing_or_bad_input(tmp_path, capsys):
    _write(tmp_path / "gt.txt", _two_people())
    (tmp_path / "bad.txt").write_text("1,1,10,20,30,40\n2,1,ten,20,30,40\n")
    (tmp_path / "bad.json").write_text("{not json")
    gt = ["--gt", str(tmp_path / "gt.txt")]
    cases = [
        (gt + ["--pred", str(tmp_path / "missing.txt")], "no such file"),
        (gt + ["--pred", str(tmp_path / "bad.txt")], "bad.txt:2: not a number"),
        (gt + ["--pred", str(tmp_path / "gt.txt"), "--pred-map", str(tmp_path / "bad.json"), "--gt-map", str(tmp_path / "bad.json")], "not JSON"),
        (gt + ["--pred", str(tmp_path / "gt.txt"), "--gt-map", str(tmp_path / "bad.json")], "go together"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert message in captured.err and captured.out == ""


def test_python_dash_m_entry_point(tmp_path):
    _write(tmp_path / "gt.txt", _two_people())
    ok = subprocess.run([sys.executable, "-m", "reid_ray.metrics", "--gt", str(tmp_path / "gt.txt"), "--pred", str(tmp_path / "gt.txt")],
                        capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0 and "IDF1  1.0000" in ok.stdout and ok.stderr == ""  # TrackEval prints nothing
