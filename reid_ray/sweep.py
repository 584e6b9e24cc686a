"""Sweep the time gap: one pair-mining run per gap, then the curriculum summary and its plot."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from reid_ray.config import PairsJobConfig
from reid_ray.io import write_json_atomic
from reid_ray.pairs_job import all_pairs, run_pairs_job
from reid_ray.viz.curriculum import plot_curriculum


def summarise_gap(out: Path) -> dict:
    pairs = all_pairs(out).to_pylist()
    sims = [p["similarity"] for p in pairs if p["kind"] == "match"]
    return {
        "n_pairs": len(pairs),
        "by_label": dict(Counter(p["label"] for p in pairs)),
        "match_similarities": sims,
        "median_match_similarity": round(float(np.median(sims)), 4) if sims else None,
        "similarity_quantiles": {q: round(float(np.quantile(sims, q)), 4) for q in (0.1, 0.25, 0.5, 0.75, 0.9)} if sims else {},
    }


def sweep_time_gaps(cfg: PairsJobConfig, videos: str, out: Path, gaps: list[float]) -> dict:
    per_gap: dict[float, dict] = {}
    for gap in gaps:
        gap_cfg = cfg.model_copy(update={"clip_pairs": cfg.clip_pairs.model_copy(update={"time_gap_s": gap})})
        run_dir = Path(out) / f"gap_{gap:g}"
        run_pairs_job(gap_cfg, videos, run_dir)
        per_gap[gap] = summarise_gap(run_dir)
    plot = plot_curriculum(per_gap, Path(out) / "curriculum.png")
    summary = {"gaps": gaps, "per_gap": {f"{g:g}": {k: v for k, v in s.items() if k != "match_similarities"} for g, s in per_gap.items()}, "plot": str(plot)}
    write_json_atomic(summary, Path(out) / "curriculum.json")
    return summary
