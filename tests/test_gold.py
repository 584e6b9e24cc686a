"""The hand-checked real gold set (tests/data/gold/) and the scorers that judge mined pairs against it."""
import json
from pathlib import Path

import pytest

from reid_ray.config import SourcesConfig
from reid_ray.mot_format import read_mot
from reid_ray.metrics.pairs import MotGroundTruth, gold_verdict, load_gold, score_pairs_by_video

GOLD = Path(__file__).resolve().parent / "data" / "gold"


def _pair(label, kind, a, b, video="clip"):
    (fa, ba), (fb, bb) = a, b
    return {"label": label, "kind": kind, "category": "person", "a_video_id": video, "b_video_id": video,
            "a_frame": fa, "a_bbox": list(ba), "b_frame": fb, "b_bbox": list(bb)}


def test_pairs_are_judged_by_the_gold_person_under_each_side(tmp_path):
    # person 7 walks right; person 9 stands; 1-based frames in the file, 0-based in pairs
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "gt.txt").write_text("1,7,10,10,30,80,1,1,1\n1,9,200,10,30,80,1,1,1\n101,7,110,12,30,80,1,1,1\n101,9,200,10,30,80,1,1,1\n")
    gold = load_gold(tmp_path)
    assert set(gold) == {"clip"} and len(gold["clip"].instances(0)) == 2 and len(gold["clip"].instances(1)) == 0
    p7a, p7b, p9b = (0, (12, 10, 40, 90)), (100, (110, 12, 140, 92)), (100, (201, 11, 230, 90))
    clutter = (100, (300, 100, 320, 140))  # no gold person there
    pairs = [
        _pair("identical", "match", p7a, p7b),  # right
        _pair("identical", "match", p7a, p9b),  # two people joined: wrong
        _pair("identical", "match", p7a, clutter),  # a side on no gold person
        _pair("same_category_different_instance", "hard_negative", p7a, p9b),  # right
        _pair("same_category_different_instance", "match", p7a, p7b),  # one person split: wrong
        _pair("pending_review", "match", p7a, p7b),  # to humans, really the same person
    ]
    assert [gold_verdict(p, gold) for p in pairs] == ["right", "wrong", "unmatched", "right", "wrong", "same"]
    pooled = score_pairs_by_video(pairs, gold)["pooled"]
    assert pooled["identical/right"] == 1 and pooled["identical/wrong"] == 1 and pooled["identical/unmatched"] == 1
    assert pooled["matches"] == 5 and pooled["matches/human"] == 1 and pooled["human/same"] == 1
    assert score_pairs_by_video(pairs, gold)["clip"] == pooled


def test_the_committed_gold_set_is_consistent():
    """Every labelled clip of the manifest has labels and a gt.txt that parses (one id per person per frame),
    written from those labels; the manifest resolves to the shared clips with no refusal."""
    from reid_ray.video.sources import list_sources

    manifest = GOLD / "manifest.csv"
    ids = [line.split(",")[0] for line in manifest.read_text().splitlines()[1:] if line.strip()]
    labelled = [vid for vid in ids if (GOLD / vid / "labels.json").exists()]
    assert len(ids) == 7 and labelled == ids
    for vid in labelled:
        df = read_mot(GOLD / vid / "gt.txt")  # fails on a malformed row or an id twice in one frame
        assert len(df) and (df.w > 0).all() and (df.h > 0).all(), vid
        assert len(MotGroundTruth(GOLD / vid / "gt.txt").frames) == df.frame.nunique()
        labels = json.loads((GOLD / vid / "labels.json").read_text())
        people = {v for v in labels["tracklets"].values() if v != "clutter"}
        people |= {r[2] for parts in labels.get("split", {}).values() for r in parts if r[2] != "clutter"}
        assert set(df.id) == people, vid
    assert set(load_gold(GOLD)) == set(labelled)
    if not (GOLD / "../../../../shared/video").resolve().exists():
        pytest.skip("shared clips missing beside the repo")
    sources, refused = list_sources(str(manifest), SourcesConfig())
    assert not refused and sorted(s["video_id"] for s in sources) == sorted(ids)
