"""Calibration picture, one panel per category: the distances of the run's certain same-individual and
different-individual pairs and of its proposed matches, the fitted P(same | distance), and the routing cuts on it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reid_ray.calibration import Calibration
from reid_ray.viz.figures import save_figure


def plot_calibration(samples: dict[str, dict[str, list]], calibration: Calibration, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    categories = sorted(samples) or ["(none)"]
    fig, axes = plt.subplots(1, len(categories), figsize=(7.5 * len(categories), 4.8), squeeze=False)
    bins = np.linspace(0, 0.6, 61)
    for ax, category in zip(axes[0], categories):
        s = samples.get(category, {})
        for kind, colour, name in (("positive", "tab:green", "certain same"), ("negative", "tab:red", "certain different"),
                                   ("proposal", "tab:blue", "proposed matches")):
            d = s.get(kind, [])
            if len(d):
                ax.hist(np.clip(d, 0, 0.6), bins=bins, density=True, alpha=0.35 if kind != "proposal" else 0.9,
                        color=colour, histtype="stepfilled" if kind != "proposal" else "step", label=f"{name} ({len(d)})")
        cal = calibration.for_category(category)
        ax.set_xlabel("track distance (arccos(cos)/pi, Chamfer)")
        ax.set_ylabel("density")
        if cal.fitted:
            twin = ax.twinx()
            grid = np.linspace(0, 0.6, 121)
            twin.plot(grid, cal.p_same(grid), color="black", lw=1.5, label="P(same | distance)")
            twin.set_ylim(0, 1.02)
            twin.set_ylabel("P(same)")
            for cut, colour in ((cal.accept_p, "tab:green"), (cal.reject_p, "tab:red")):
                if 0 <= cut <= 1:
                    twin.axhline(cut, color=colour, ls="--", lw=1.2)
            ax.set_title(f"{category}: auto same at P(same) >= {_cut(cal.accept_p)}: {cal.n_auto_accept} (est. error "
                         f"{_pct(cal.estimated_error_accept)})\nauto different at P(same) <= {_cut(cal.reject_p)}: {cal.n_auto_reject} "
                         f"(est. error {_pct(cal.estimated_error_reject)}); to humans {cal.n_to_humans}\ncurve at the run's "
                         f"share of true matches {cal.prior_same:.2f}; {len(cal.video_priors)} video(s) with their own; "
                         f"'same' moved by {cal.shift:.3f} ({cal.n_bridged} tracks across the gap)", fontsize=8)
        else:
            ax.set_title(f"{category}: not fitted, all to humans\n{cal.reason}", fontsize=8)
        ax.legend(fontsize=7, loc="upper right")
    return save_figure(fig, path)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def _cut(p: float) -> str:
    return f"{p:.3f}" if 0 <= p <= 1 else "(none)"
