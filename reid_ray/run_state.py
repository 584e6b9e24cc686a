"""An ``--out`` belongs to one configuration: the first run records its fingerprint in ``_run.json``, a rerun with
another one is refused (resuming would mix results of two configurations under one report)."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from reid_ray.config import ConfigError
from reid_ray.io import write_json_atomic

RUN_STATE = "_run.json"
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, as shells report it
INTERRUPTED = "interrupted; rerun with the same --out to resume"


def check_out_dir(out: Path) -> None:
    """Refuse an --out that exists and is no folder (a file, a link to one) before anything is written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory; give a folder (new or from an earlier run)")


def _earlier_fingerprint(out: Path) -> str | None:
    """The fingerprint of results already in ``out``: its ``_run.json``, else (older runs wrote none) its report."""
    for name in (RUN_STATE, "report.json"):
        path = out / name
        if path.is_file():
            try:
                return json.loads(path.read_text()).get("fingerprint")
            except (ValueError, AttributeError):
                raise ConfigError(f"--out {out}: {path.name} is unreadable; use a new --out") from None
    return None


def check_run_state(out: Path, fingerprint: str, config: dict) -> dict:
    """The run state of ``out`` (created on first use); ConfigError when it holds another configuration."""
    out = Path(out)
    check_out_dir(out)
    earlier = _earlier_fingerprint(out)
    if earlier is not None and earlier != fingerprint:
        raise ConfigError(
            f"--out {out} holds results of another configuration (fingerprint {earlier}, this run {fingerprint}); "
            "use a new --out to run this configuration"
        )
    path = out / RUN_STATE
    if path.is_file():
        return json.loads(path.read_text())
    state = {"fingerprint": fingerprint, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "config": config}
    write_json_atomic(state, path)
    return state
