"""The time-gap sweep: one run per gap, a curriculum summary and its plot."""
import json
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest

from _paths import require_shared
from reid_ray.config import load_config
from reid_ray.sweep import sweep_time_gaps
from reid_ray.video.synthetic import generate_corpus

pytestmark = pytest.mark.ray


def test_sweep_writes_curriculum(ray_local, tmp_path):
    generate_corpus(tmp_path / "in", n_videos=1, seed=3, n_frames=150)
    cfg = load_config("configs/local.yaml", [f"models_dir={require_shared('models').resolve()}", "clip_pairs.pairs_per_video=2", "sampling.frames_per_clip=3"])
    summary = sweep_time_gaps(cfg, str(tmp_path / "in/manifest.csv"), tmp_path / "out", [2.0, 8.0])
    saved = json.loads((tmp_path / "out/curriculum.json").read_text())
    assert saved["gaps"] == [2.0, 8.0] and set(saved["per_gap"]) == {"2", "8"}
    for g in ("2", "8"):
        # Each gap's summary against that run's own files: its config, its pairs and its report's dataset card.
        run = tmp_path / f"out/gap_{g}"
        assert json.loads((run / "_run.json").read_text())["config"]["clip_pairs"]["time_gap_s"] == float(g)
        rows = [r for f in sorted((run / "pairs").glob("*.parquet"))
                for r in pq.read_table(f, columns=["label", "kind", "similarity"]).to_pylist()]
        card = json.loads((run / "report.json").read_text())["dataset_card"]
        per_gap = saved["per_gap"][g]
        assert per_gap["n_pairs"] == len(rows) == card["pairs"] > 0
        assert per_gap["by_label"] == dict(Counter(r["label"] for r in rows)) == card["by_label"]
        sims = [r["similarity"] for r in rows if r["kind"] == "match"]
        assert per_gap["median_match_similarity"] == (round(float(np.median(sims)), 4) if sims else None)
    png = tmp_path / "out/curriculum.png"
    assert png.exists() and png.stat().st_size > 10_000 and summary["plot"] == str(png)
