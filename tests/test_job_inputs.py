"""Bad input stays local, reruns stay true, through the jobs' own ``main``: nan/inf refused before any output,
--out that is a file, a changed configuration on an --out refused, every source refused -> exit 1 with the reasons,
stale refusal records replaced. No Ray here: each case stops before any video is processed."""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from reid_ray.run_state import RUN_STATE

ROOT = Path(__file__).resolve().parents[1]


def load_job(name: str):
    """A script of jobs/ as a module (jobs/ is no package: the scripts run from a checkout or a Ray working_dir)."""
    spec = importlib.util.spec_from_file_location(f"job_{name}", ROOT / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reid_main():
    return load_job("reid_videos").main


@pytest.fixture(scope="module")
def pairs_main():
    return load_job("generate_pairs").main


@pytest.fixture
def manifest(tmp_path) -> Path:
    """Two real files whose licences are not allowed: both refused by the sources stage."""
    (tmp_path / "a.mp4").write_bytes(b"not looked at: refused first")
    (tmp_path / "b.mp4").write_bytes(b"not looked at: refused first")
    path = tmp_path / "manifest.csv"
    path.write_text("video_id,uri,license\na,a.mp4,proprietary\nb,b.mp4,\n")
    return path


@pytest.mark.parametrize("override, field", [("clustering.threshold=nan", "clustering.threshold"),
                                             ("tracking.max_height_jump=.inf", "tracking.max_height_jump"),
                                             ("distance.p=-inf", "distance.p")])
def test_reid_job_refuses_nan_and_inf_before_any_output(reid_main, manifest, tmp_path, capsys, override, field):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        reid_main(["--videos", str(manifest), "--out", str(out), "--set", override])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert field in err and "finite" in err, err
    assert not out.exists()


@pytest.mark.parametrize("override, field", [("proposal.accept_threshold=nan", "proposal.accept_threshold"),
                                             ("clip_pairs.clip_length_s=inf", "clip_pairs.clip_length_s"),
                                             ("clip_pairs.time_gap_s=[1, .inf]", "clip_pairs.time_gap_s")])
def test_pair_job_refuses_nan_and_inf_before_any_output(pairs_main, tmp_path, capsys, override, field):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        pairs_main(["--out", str(out), "--set", override])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert field in err and "finite" in err, err
    assert not out.exists()  # not even the embedded default input, nor _run.json


def test_reid_job_out_is_a_file(reid_main, manifest, tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("someone's notes")
    assert reid_main(["--videos", str(manifest), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out}" in err and "not a directory" in err and "Traceback" not in err
    assert out.read_text() == "someone's notes"


def test_pair_job_out_is_a_file(pairs_main, tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("someone's notes")
    assert pairs_main(["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"--out {out}" in err and "not a directory" in err and "Traceback" not in err
    assert out.read_text() == "someone's notes"


def test_reid_job_with_every_source_refused_exits_1_and_says_why(reid_main, manifest, tmp_path, capsys):
    out = tmp_path / "out"
    assert reid_main(["--videos", str(manifest), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "all 2 source(s) refused or failed" in err and "licence 'proprietary' is not allowed" in err and "no licence" in err, err
    refusals = pq.read_table(out / "errors" / "sources.parquet").to_pylist()
    assert sorted(r["video_id"] for r in refusals) == ["a", "b"]
    report = json.loads((out / "report.json").read_text())
    assert report["failure"] and report["videos"] == {"usable": 0, "refused": 2, "processed_this_run": 0, "finished": 0}


def test_reid_job_stale_refusals_are_replaced(reid_main, manifest, tmp_path, capsys):
    out = tmp_path / "out"
    assert reid_main(["--videos", str(manifest), "--out", str(out)]) == 1
    assert (out / "errors" / "sources.parquet").exists()
    manifest.write_text("video_id,uri,license\nb,b.mp4,proprietary\n")  # a is gone from the manifest
    assert reid_main(["--videos", str(manifest), "--out", str(out)]) == 1
    assert [r["video_id"] for r in pq.read_table(out / "errors" / "sources.parquet").to_pylist()] == ["b"]
    empty = tmp_path / "no_videos"
    empty.mkdir()
    assert reid_main(["--videos", str(empty), "--out", str(out)]) == 1
    assert "no video found" in capsys.readouterr().err
    assert not (out / "errors" / "sources.parquet").exists()  # nothing refused now: the old records are gone
    assert json.loads((out / "report.json").read_text())["errors"]["total"] == 0


def test_reid_job_refuses_another_configuration_on_the_same_out(reid_main, manifest, tmp_path, capsys):
    out = tmp_path / "out"
    assert reid_main(["--videos", str(manifest), "--out", str(out)]) == 1
    state = (out / RUN_STATE).read_text()
    capsys.readouterr()
    assert reid_main(["--videos", str(manifest), "--out", str(out), "--set", "clustering.threshold=0.3"]) == 2
    err = capsys.readouterr().err
    assert "holds results of another configuration" in err and "new --out" in err, err
    assert (out / RUN_STATE).read_text() == state
    # where the fingerprint does not reach: a placement setting is the same configuration
    assert reid_main(["--videos", str(manifest), "--out", str(out), "--set", "resources.num_cpus=1"]) == 1


def test_reid_job_refuses_an_out_of_an_older_run_with_another_configuration(reid_main, manifest, tmp_path, capsys):
    """Runs from before _run.json left only report.json, which carries the fingerprint too."""
    out = tmp_path / "old"
    out.mkdir()
    (out / "report.json").write_text(json.dumps({"job": "reid_videos", "fingerprint": "0123456789abcdef"}))
    assert reid_main(["--videos", str(manifest), "--out", str(out)]) == 2
    assert "0123456789abcdef" in capsys.readouterr().err
    assert not (out / RUN_STATE).exists()


@pytest.fixture
def seven_refused(tmp_path) -> Path:
    """Seven sources, each refused for its licence (odd ones a licence not allowed, even ones none)."""
    rows = ["video_id,uri,license"]
    for i in range(7):
        (tmp_path / f"v{i}.mp4").write_bytes(b"not looked at: refused first")
        rows.append(f"v{i},v{i}.mp4,{'proprietary' if i % 2 else ''}")
    path = tmp_path / "refused.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("job", ["generate_pairs", "reid_videos", "build_training_set", "sweep_time_gap"])
def test_refused_sources_are_named_with_their_reasons_and_a_run_with_none_left_exits_1(job, seven_refused, tmp_path, capsys,
                                                                                         monkeypatch):
    """The console names each refused source and why (the first five, then how many more), not only a count; with
    every source refused the job exits 1 with the reasons on stderr. No Ray: nothing is left to process."""
    monkeypatch.syspath_prepend(str(ROOT / "jobs"))  # sweep_time_gap imports generate_pairs as a script would
    code = load_job(job).main(["--videos", str(seven_refused), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 1, (out, err)
    for i in range(5):
        assert f"v{i}: " + ("licence 'proprietary' is not allowed" if i % 2 else "no licence") in out, out
    assert "v5:" not in out and "v6:" not in out and "and 2 more (all in" in out, out
    assert err.startswith("error: ") and "refused" in err and "licence 'proprietary' is not allowed" in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("job", ["generate_pairs", "reid_videos", "build_training_set"])
def test_run_state_records_the_models_dir_the_run_used(job, seven_refused, tmp_path, monkeypatch, capsys):
    """_run.json names the models folder actually used: REID_RAY_MODELS_DIR over the config's, else the default under
    the home folder; never the config's value when something else won (or None)."""
    main = load_job(job).main
    env_dir, home = tmp_path / "from_env", tmp_path / "home"
    monkeypatch.setenv("REID_RAY_MODELS_DIR", str(env_dir))
    assert main(["--videos", str(seven_refused), "--out", str(tmp_path / "a"), "--set", "models_dir=/not/used"]) == 1
    assert json.loads((tmp_path / "a" / RUN_STATE).read_text())["config"]["models_dir"] == str(env_dir)
    monkeypatch.delenv("REID_RAY_MODELS_DIR")
    monkeypatch.setenv("HOME", str(home))
    assert main(["--videos", str(seven_refused), "--out", str(tmp_path / "b")]) == 1
    assert json.loads((tmp_path / "b" / RUN_STATE).read_text())["config"]["models_dir"] == str(home / ".cache/reid_ray/models")


class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


@pytest.mark.parametrize("job", sorted(p.stem for p in (ROOT / "jobs").glob("*.py")))
def test_every_flag_of_every_job_says_what_it_is(job, monkeypatch):
    """--help describes each flag: the parser a job builds is caught when it parses, and each option has a help text."""
    def caught(parser, *args, **kwargs):
        raise _Parsed(parser)

    monkeypatch.syspath_prepend(str(ROOT / "jobs"))
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", caught)
    with pytest.raises(_Parsed) as parsed:
        load_job(job).main([])
    flags = [a for a in parsed.value.parser._actions if a.dest != "help"]
    assert flags and [a.option_strings for a in flags if not a.help or a.help == argparse.SUPPRESS] == []
