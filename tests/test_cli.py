"""The jobs' shared command line (reid_ray.cli): flags with their defaults and the exit codes with their messages."""
from __future__ import annotations

import pytest

from reid_ray.cli import (
    BAD_INPUT_EXIT_CODE,
    CONFIGS,
    NO_RESULTS_EXIT_CODE,
    add_config,
    add_out,
    add_set,
    add_videos,
    fail,
    job_parser,
    run_job,
)
from reid_ray.config import ConfigError
from reid_ray.run_state import INTERRUPTED, INTERRUPTED_EXIT_CODE
from reid_ray.video.sources import SourceError


def test_shared_flags_and_their_defaults():
    p = job_parser("doc")
    add_config(p, "local.yaml")
    add_videos(p, generated_default=True)
    add_out(p, "runs/x")
    add_set(p, "a.b=1")
    args = p.parse_args(["--set", "a.b=1", "--set", "c=2"])
    assert (args.config, args.videos, args.out, args.set) == (str(CONFIGS / "local.yaml"), None, "runs/x", ["a.b=1", "c=2"])
    assert (CONFIGS / "local.yaml").is_file()
    required = job_parser("doc")
    add_videos(required)
    with pytest.raises(SystemExit):
        required.parse_args([])


def _raise(err: BaseException):
    def work() -> int:
        raise err
    return work


def test_exit_codes_and_messages(capsys):
    assert run_job(lambda: 0) == 0
    assert run_job(_raise(SourceError("no such video"))) == BAD_INPUT_EXIT_CODE == 2
    assert capsys.readouterr().err == "error: no such video\n"
    assert run_job(_raise(FileExistsError("out holds another run"))) == 2
    assert run_job(_raise(RuntimeError("nothing")), no_results=(RuntimeError,)) == NO_RESULTS_EXIT_CODE == 1
    assert run_job(_raise(KeyboardInterrupt())) == INTERRUPTED_EXIT_CODE == 130
    assert capsys.readouterr().err.splitlines()[-1] == INTERRUPTED
    with pytest.raises(SourceError):  # a job that reports only config errors lets the others through
        run_job(_raise(SourceError("x")), bad_input=(ConfigError,))
    assert fail("no results: all refused") == 1 and capsys.readouterr().err == "error: no results: all refused\n"
