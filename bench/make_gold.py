"""Build the gold set (tests/data/gold): detector tracklets, contact sheets for labelling by eye, gt.txt from labels.

  --track   run the long-video stage (configs/reid_local.yaml, CPU profile, weights in ../shared/models) on every
            clip of tests/data/gold/manifest.csv, exactly as tests/test_reid_real_clip.py::_run does, into --work.
  --sheets  contact sheets per clip in <work>/<video_id>/sheets/: every tracklet as a captioned group of up to 8 crops
            evenly over its frames (enlarged ~3x for CAVIAR, with context; tracklet id, frame span, mean box, frame
            of each crop), packed in reading order; plus full frames with every tracklet box and id drawn.
  --write   tests/data/gold/<video_id>/labels.json -> gt.txt (MOTChallenge ``frame,id,x,y,w,h,1,1,1``, 1-based frames,
            1-based pixels like the stage's identities.txt): one row per detected box of every tracklet labelled a
            person, with the physical person's id; 'clutter' tracklets (and clutter parts of splits) are left out.
  --check   full frames with the gt ids drawn, in <work>/<video_id>/check/, to look at after --write.

labels.json: {"tracklets": {"<tracklet_id>": person_id | "clutter"},
              "split": {"<tracklet_id>": [[first_frame, last_frame, person_id | "clutter"], ...]},  # 0-based, inclusive
              "notes": "..."}
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from reid_ray.mot_format import mot_row, read_mot
from reid_ray.video.decode import probe, read_frames

REPO = Path(__file__).resolve().parents[1]
GOLD = REPO / "tests" / "data" / "gold"
MODELS = REPO.parent / "shared" / "models"
CROPS_PER_ROW, CROP_H, CROP_W, SHEET_W, ROWS_PER_PAGE, N_FULL = 8, 140, 90, 1500, 9, 10
FONT = cv2.FONT_HERSHEY_SIMPLEX


def clips() -> list[dict]:
    """The manifest's rows, uris resolved by the project's own source listing (no refusal allowed)."""
    from reid_ray.config import ReidJobConfig, load_config
    from reid_ray.video.sources import list_sources

    videos, errors = list_sources(str(GOLD / "manifest.csv"), load_config(REPO / "configs/reid_local.yaml", [], ReidJobConfig).sources)
    assert not errors, errors
    return videos


def track(work: Path, only: list[str] | None) -> None:
    import ray

    from reid_ray.config import ReidJobConfig, load_config
    from reid_ray.stages.reid_video import ReidVideoStage

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    for v in clips():
        if only and v["video_id"] not in only:
            continue
        cfg = load_config(REPO / "configs/reid_local.yaml", [f"models_dir={MODELS.resolve()}",
                                                             f"sources.default_license={v['license']}"], ReidJobConfig)
        summary = ReidVideoStage(cfg.model_dump_json(), str(work)).process({k: v[k] for k in ("video_id", "uri", "license")})
        print(v["video_id"], summary["status"], summary.get("message", ""), flush=True)
        assert summary["status"] == "ok", summary


def tracklets(work: Path, vid: str) -> pd.DataFrame:
    df = pq.read_table(work / vid / "tracklets.parquet", columns=["frame", "tracklet_id", "identity", "bbox"]).to_pandas()
    return df.sort_values(["tracklet_id", "frame"]).reset_index(drop=True)


def _crop(img: np.ndarray, box, height: int = CROP_H) -> np.ndarray:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx1, cy1 = int(max(0, x1 - 0.3 * w)), int(max(0, y1 - 0.15 * h))
    cx2, cy2 = int(min(img.shape[1], x2 + 0.3 * w)), int(min(img.shape[0], y2 + 0.15 * h))
    c = img[cy1:cy2, cx1:cx2].copy()
    cv2.rectangle(c, (int(x1 - cx1), int(y1 - cy1)), (int(x2 - cx1), int(y2 - cy1)), (255, 255, 0), 1)
    s = height / max(1, c.shape[0])
    c = cv2.resize(c, (max(1, round(c.shape[1] * s)), height), interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(c, 0, 0, 0, max(0, CROP_W - c.shape[1]), cv2.BORDER_CONSTANT)[:, :CROP_W]


def _draw(img: np.ndarray, boxes: list[tuple], scale: float) -> np.ndarray:
    out = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    for label, (x1, y1, x2, y2), colour in boxes:
        p1, p2 = (int(x1 * scale), int(y1 * scale)), (int(x2 * scale), int(y2 * scale))
        cv2.rectangle(out, p1, p2, colour, 2)
        cv2.putText(out, str(label), (p1[0], max(14, p1[1] - 3)), FONT, 0.5, colour, 2)
    return out


def _colour(key: object) -> tuple[int, int, int]:
    rng = np.random.default_rng(abs(hash(str(key))) % 2**32)
    return tuple(int(c) for c in rng.integers(80, 256, 3))  # type: ignore[return-value]


def _save(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def sheets(work: Path, v: dict) -> None:
    """Tracklets packed in reading order, up to 8 crops each (evenly over its frames), each crop captioned
    ``t<tracklet> <frame>``; a caption bar gives the frame span and mean box. Plus N_FULL full frames with all boxes."""
    vid, df = v["video_id"], tracklets(work, v["video_id"])
    picks = {t: g.iloc[np.unique(np.linspace(0, len(g) - 1, CROPS_PER_ROW).round().astype(int))] for t, g in df.groupby("tracklet_id")}
    full = sorted(set(np.linspace(0, probe(v["uri"]).n_frames - 1, N_FULL).round().astype(int)))
    frames = dict(zip(wanted := sorted(set(pd.concat(picks.values()).frame) | set(full)), read_frames(v["uri"], wanted)))
    rows, row, used = [], [], 0
    for t, g in picks.items():
        crops = [_crop(frames[r.frame], r.bbox) for r in g.itertuples()]
        for c, r in zip(crops, g.itertuples()):
            cv2.putText(c, f"{r.frame}", (2, CROP_H - 4), FONT, 0.4, (255, 255, 0), 1)
        span = df[df.tracklet_id == t]
        box = [int(x) for x in np.mean(np.stack(span.bbox.to_numpy()), axis=0)]
        group = np.hstack(crops)
        bar = np.full((16, group.shape[1], 3), _colour(t), np.uint8)
        cv2.putText(bar, f"t{t} {span.frame.min()}-{span.frame.max()} {box}"[: group.shape[1] // 7], (2, 12), FONT, 0.4, (0, 0, 0), 1)
        group = cv2.copyMakeBorder(np.vstack([bar, group]), 0, 0, 0, 4, cv2.BORDER_CONSTANT)
        if used + group.shape[1] > SHEET_W and row:
            rows.append(row)
            row, used = [], 0
        row.append(group)
        used += group.shape[1]
    rows.append(row)
    lines = [np.hstack(r + [np.zeros((CROP_H + 16, SHEET_W - sum(g.shape[1] for g in r), 3), np.uint8)]) for r in rows]
    for p in range(0, len(lines), ROWS_PER_PAGE):
        _save(work / vid / "sheets" / f"tracklets_{p // ROWS_PER_PAGE:02d}.png", np.vstack(lines[p : p + ROWS_PER_PAGE]))
    scale = 2.0 if frames[full[0]].shape[1] < 500 else 1.0
    for f in full:
        here = df[df.frame == f]
        img = _draw(frames[f], [(f"t{r.tracklet_id}", r.bbox, _colour(r.tracklet_id)) for r in here.itertuples()], scale)
        cv2.putText(img, f"frame {f}", (4, 16), FONT, 0.6, (255, 255, 255), 2)
        _save(work / vid / "sheets" / f"full_{f:05d}.png", img)


def person_of(labels: dict, tracklet_id: int, frame: int) -> int | str:
    for lo, hi, who in labels.get("split", {}).get(str(tracklet_id), []):
        if lo <= frame <= hi:
            return who
    return labels["tracklets"][str(tracklet_id)]


def write(work: Path, vid: str) -> Path:
    labels = json.loads((GOLD / vid / "labels.json").read_text())
    df = tracklets(work, vid)
    missing = {str(t) for t in df.tracklet_id.unique()} - set(labels["tracklets"]) - set(labels.get("split", {}))
    assert not missing, f"{vid}: tracklets without a label: {sorted(missing, key=int)}"
    out: list[tuple[int, int, str]] = []
    for r in df.itertuples():
        who = person_of(labels, r.tracklet_id, r.frame)
        if who != "clutter":
            out.append((int(r.frame), int(who), mot_row(r.frame, int(who), r.bbox, "1,1,1")))
    path = GOLD / vid / "gt.txt"
    path.write_text("".join(line + "\n" for *_, line in sorted(out)))
    read_mot(path)  # the project's reader: 1-based frames, one box per id and frame
    return path


def check(work: Path, v: dict, every: int) -> None:
    gt = read_mot(GOLD / v["video_id"] / "gt.txt")
    wanted = sorted(int(f) - 1 for f in gt.frame.unique() if (int(f) - 1) % every == 0)
    for f, img in zip(wanted, read_frames(v["uri"], wanted)):
        here = gt[gt.frame == f + 1]
        boxes = [(int(r.id), (r.x - 1, r.y - 1, r.x - 1 + r.w, r.y - 1 + r.h), _colour(r.id)) for r in here.itertuples()]
        out = _draw(img, boxes, 2.0 if img.shape[1] < 500 else 1.0)
        cv2.putText(out, f"frame {f} (0-based) gt", (4, 16), FONT, 0.6, (255, 255, 255), 2)
        _save(work / v["video_id"] / "check" / f"gt_{f:05d}.png", out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/gold_work"))
    ap.add_argument("--video", action="append", help="only these video ids (default: all of the manifest)")
    ap.add_argument("--track", action="store_true")
    ap.add_argument("--sheets", action="store_true")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--check", type=int, metavar="EVERY", help="render gt overlays every EVERY frames")
    a = ap.parse_args()
    if a.track:
        track(a.work, a.video)
    for v in clips():
        if a.video and v["video_id"] not in a.video:
            continue
        if a.sheets:
            sheets(a.work, v)
        if (a.write or a.check) and not (GOLD / v["video_id"] / "labels.json").exists():
            print(f"{v['video_id']}: not labelled yet (no labels.json)")
            continue
        if a.write:
            gt = read_mot(write(a.work, v["video_id"]))
            print(f"{v['video_id']}: {len(gt)} gt rows, {gt.id.nunique()} persons")
        if a.check:
            check(a.work, v, a.check)


if __name__ == "__main__":
    main()
