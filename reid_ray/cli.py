"""What the scripts in ``jobs/`` share: their common flags (``--config``, ``--set``, ``--videos``, ``--out``) and how a
run ends (exit codes, one ``error: ...`` line on stderr). Each script stays a recipe read top to bottom: parse, load
the config, run, report.

Exit codes: 0 done; 1 the job ran and has nothing usable (the reasons printed); 2 bad config or input, before any
work or as soon as it shows; 130 interrupted (rerun with the same ``--out`` to resume).
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from reid_ray.config import CONFIG_ERROR_EXIT_CODE
from reid_ray.run_state import INTERRUPTED, INTERRUPTED_EXIT_CODE

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BAD_INPUT_EXIT_CODE = CONFIG_ERROR_EXIT_CODE  # 2
NO_RESULTS_EXIT_CODE = 1  # the job ran, but nothing has results: every source refused or failed (reasons printed)


def job_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose ``--help`` shows the script's docstring as written (its usage lines included)."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_config(p: argparse.ArgumentParser, profile: str, what: str = "YAML profile") -> None:
    """``--config``, default ``configs/<profile>`` of this checkout."""
    p.add_argument("--config", default=str(CONFIGS / profile), help=f"{what} (default: configs/{profile})")


def add_videos(p: argparse.ArgumentParser, *, generated_default: bool = False) -> None:
    """``--videos``: required, or with ``generated_default`` optional (the job then makes synthetic footage)."""
    where = "file, folder, s3://bucket/prefix or manifest"
    if generated_default:
        p.add_argument("--videos", default=None, help=f"{where}; default: generated synthetic footage")
    else:
        p.add_argument("--videos", required=True, help=where)


def add_out(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--out", default=default, help=f"output directory (reruns resume here; default: {default})")


def add_set(p: argparse.ArgumentParser, example: str | None = None) -> None:
    """``--set KEY=VALUE``, repeatable; applied after the profile (``reid_ray.config.load_config``)."""
    e_g = f", e.g. {example}" if example else ""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=f"override a config field (repeatable){e_g}")


def input_errors() -> tuple[type[BaseException], ...]:
    """What a job reports as bad config or input (exit 2): a config, source, model-file or output-folder problem."""
    from reid_ray.config import ConfigError
    from reid_ray.models.download import DownloadError
    from reid_ray.video.sources import SourceError

    return ConfigError, SourceError, DownloadError, FileNotFoundError, NotADirectoryError, FileExistsError, PermissionError


def fail(message: object, code: int = NO_RESULTS_EXIT_CODE) -> int:
    """Print ``error: <message>`` on stderr; returns ``code`` for the script to exit with."""
    print(f"error: {message}", file=sys.stderr)
    return code


def run_job(
    work: Callable[[], int],
    bad_input: tuple[type[BaseException], ...] | None = None,
    no_results: tuple[type[BaseException], ...] = (),
) -> int:
    """``work()``'s exit code; ``bad_input`` (default ``input_errors()``) -> 2, ``no_results`` -> 1, each with its
    message; Ctrl-C -> 130 with how to resume."""
    try:
        return work()
    except bad_input or input_errors() as err:
        return fail(err, BAD_INPUT_EXIT_CODE)
    except no_results as err:
        return fail(err, NO_RESULTS_EXIT_CODE)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
