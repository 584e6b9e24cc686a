"""The long-video stage on the two CAVIAR re-entry clips (no ground truth shipped), against hand annotation.

OneLeaveShopReenter1, from watching the clip: a person walks out of the shop towards the railing, is at box centre
about (200, 141) on frame 240 (1-based), drops out of view below the railing for about 13 frames, and is back at
about (199, 146) on frame 270. The tracker must end the track at the exit, so the one identity across the gap
comes from re-identification (two tracklets, one identity).

OneLeaveShopReenter2, from watching the clip: a person stands in the shop near the door at about (236, 100) on
frame 200, walks out and along the corridor to the left edge, (87, 133) on frame 350, and walks back in, (239, 108)
on frame 500. They pass mannequins and other shoppers at the door both ways: one identity on all three frames.

Each test runs on the stretch of its clip around the event (frames copied losslessly, FFV1): the job's time goes
to detecting and embedding every frame, and the frames far from the event test nothing more.
"""
import json

import cv2
import pandas as pd
import pyarrow.parquet as pq
from _paths import require_shared

from reid_ray.config import ReidJobConfig, load_config
from reid_ray.stages.reid_video import ReidVideoStage
from reid_ray.video.decode import iter_frames

CLIP = "video/caviar/OneLeaveShopReenter1front.mpg"
CLIP2 = "video/caviar/OneLeaveShopReenter2front.mpg"
SHOP, CORRIDOR, BACK = (200, 236.0, 100.0), (350, 87.0, 133.0), (500, 239.0, 108.0)
BEFORE = (240, 200.0, 141.0)  # 1-based frame of the whole clip, box centre x, y
AFTER = (270, 199.0, 146.0)
STRETCH = 140, 340  # 0-based frames [start, end) of CLIP the test runs on
STRETCH2 = 150, 540  # of CLIP2


def _excerpt(clip: str, stretch: tuple[int, int], dest) -> str:
    """Frames [start, end) of a clip as a lossless FFV1 file (decoded once, no re-compression loss)."""
    frames = iter_frames(require_shared(clip), *stretch)
    first = next(frames)[1]
    out = cv2.VideoWriter(str(dest), cv2.VideoWriter_fourcc(*"FFV1"), 25.0, (first.shape[1], first.shape[0]))
    for frame in (first, *(f for _, f in frames)):
        out.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    out.release()
    return str(dest)


def _in(stretch: tuple[int, int], where: tuple[int, float, float]) -> tuple[int, float, float]:
    """A 1-based frame of the whole clip as a frame of the excerpt."""
    return where[0] - stretch[0], where[1], where[2]


def _nearest(ids: pd.DataFrame, frame: int, x: float, y: float) -> pd.Series:
    rows = ids[ids.frame == frame]
    d = ((rows.x + rows.w / 2 - x) ** 2 + (rows.y + rows.h / 2 - y) ** 2) ** 0.5
    assert len(rows) and d.min() < 15, f"nobody near ({x}, {y}) on frame {frame}: {rows.to_dict('records')}"
    return rows.loc[d.idxmin()]


def _run(clip: str, out, stretch: tuple[int, int]) -> pd.DataFrame:
    cfg = load_config("configs/reid_local.yaml", [f"models_dir={require_shared('models').resolve()}",
                                                 "sources.default_license=CAVIAR-research",
                                                 # identities unchanged without the pictures and videos
                                                 "outputs.figures=false", "outputs.videos=false"], ReidJobConfig)
    stage = ReidVideoStage(cfg.model_dump_json(), str(out))
    uri = _excerpt(clip, stretch, out / "excerpt.mkv")
    summary = stage.process({"video_id": "clip", "uri": uri, "license": "CAVIAR-research"})
    assert summary["status"] == "ok", summary["message"]
    report = json.loads((out / "clip" / "report.json").read_text())
    assert report["figures"] == {} and not (out / "clip" / "final_reid_output.mp4").exists()  # outputs.* off
    return pd.read_csv(out / "clip" / "identities.txt", header=None, names=["frame", "id", "x", "y", "w", "h", "conf", "a", "b", "c"])


def test_person_who_leaves_and_comes_back_keeps_one_identity(ray_local, tmp_path):
    # ray_local: a clip with many tracklets takes the sharded (Ray tasks) distance path; without the fixture that
    # would start a Ray of its own and leave it running for the tests after this one.
    ids = _run(CLIP, tmp_path, STRETCH)
    before, after = _nearest(ids, *_in(STRETCH, BEFORE)), _nearest(ids, *_in(STRETCH, AFTER))
    assert before.id == after.id
    tracklets = pq.read_table(tmp_path / "clip" / "tracklets.parquet", columns=["frame", "tracklet_id", "identity"]).to_pandas()
    t_before = tracklets[(tracklets.frame == _in(STRETCH, BEFORE)[0] - 1) & (tracklets.identity == before.id)].tracklet_id
    t_after = tracklets[(tracklets.frame == _in(STRETCH, AFTER)[0] - 1) & (tracklets.identity == after.id)].tracklet_id
    assert set(t_before).isdisjoint(t_after)  # joined by re-identification, not by the tracker


def test_person_who_walks_out_and_back_into_the_shop_keeps_one_identity(ray_local, tmp_path):
    ids = _run(CLIP2, tmp_path, STRETCH2)
    seen = [int(_nearest(ids, *_in(STRETCH2, where)).id) for where in (SHOP, CORRIDOR, BACK)]
    assert len(set(seen)) == 1, f"identities at frames 200, 350, 500: {seen}"
