"""Typed configuration: profiles load, overrides apply, bad values stop with the field named and exit 2."""
import subprocess
import sys
from pathlib import Path

import pytest

from reid_ray.config import CalibrationConfig, ClipPairsConfig, ConfigError, EmbedderChoice, PairsJobConfig, load_config
from reid_ray.reid_config import ReidJobConfig, TrackingConfig, TrainingSetJobConfig
from reid_ray.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


# Every profile in configs/, with the config types of the jobs that take it.
PROFILES = {
    "local.yaml": [PairsJobConfig], "gpu.yaml": [PairsJobConfig], "bench_scale.yaml": [PairsJobConfig],
    "reid_local.yaml": [ReidJobConfig, TrainingSetJobConfig], "reid_gpu.yaml": [ReidJobConfig, TrainingSetJobConfig],
    "train.yaml": [TrainConfig],
}


def test_every_profile_is_loaded_below():
    assert sorted(p.name for p in (ROOT / "configs").iterdir() if p.suffix in (".yaml", ".yml")) == sorted(PROFILES)


@pytest.mark.parametrize("profile, model", [(p, m) for p, models in PROFILES.items() for m in models])
def test_profiles_load(profile, model):
    cfg = load_config(ROOT / "configs" / profile, model=model)
    assert type(cfg) is model


def test_overrides_apply_with_yaml_types():
    cfg = load_config(ROOT / "configs/local.yaml", ["clip_pairs.time_gap_s=[5, 15]", "proposal.accept_threshold=0.95"])
    assert cfg.clip_pairs.time_gap_s == (5.0, 15.0)
    assert cfg.proposal.accept_threshold == 0.95


@pytest.mark.parametrize(
    "override, field",
    [
        ("clip_pairs.clip_length_s=-1", "clip_pairs.clip_length_s"),
        ("proposal.reject_threshold=0.99", "proposal"),
        ("segmenter.backend=nope", "segmenter.backend"),
        ("clip_pairs.typo=1", "clip_pairs.typo"),
        ("clip_pairs.time_gap_s=[9, 3]", "clip_pairs.time_gap_s"),
        ("proposal.accept_threshold=2", "proposal.accept_threshold"),
        ("proposal.reject_threshold=-0.1", "proposal.reject_threshold"),
        ("proposal.calibration.target_error=1.5", "proposal.calibration.target_error"),
        ("proposal.calibration.target_error=0", "proposal.calibration.target_error"),
        ("embedder.by_category.person.backend=nope", "embedder.by_category.person.backend"),
        ("segmenter.simulated_seconds_per_frame=0.1", "segmenter"),  # simulated model time: bench backend only
        ("resources.probe.batch_size=4", "resources.probe"),  # one video per probe call
    ],
)
def test_bad_values_name_the_field(override, field):
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "configs/local.yaml", [override])
    assert field in str(err.value)


@pytest.mark.parametrize("profile, model, override, section, closest, keys_of", [
    ("local.yaml", PairsJobConfig, "clip_pairs.clip_lenght_s=3", "clip_pairs", "clip_length_s", ClipPairsConfig),
    ("local.yaml", PairsJobConfig, "proposal.calibration.target_eror=0.1", "proposal.calibration", "target_error", CalibrationConfig),
    ("local.yaml", PairsJobConfig, "embedder.by_category.person.bakend=dino", "embedder.by_category.person", "backend", EmbedderChoice),
    ("local.yaml", PairsJobConfig, "clip_pair.time_gap_s=3", "", "clip_pairs", PairsJobConfig),
    ("reid_local.yaml", ReidJobConfig, "tracking.max_sid_px=640", "tracking", "max_side_px", TrackingConfig),
])
def test_an_unknown_key_is_named_with_its_section_the_closest_key_and_every_valid_one(profile, model, override, section, closest, keys_of):
    key = override.split("=")[0].split(".")[len(section.split(".")) if section else 0]
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "configs" / profile, [override], model)
    msg = str(err.value)
    assert f"unknown key '{key}' " + (f"in section '{section}'" if section else "at the top level") in msg, msg
    assert f"set by override '{override}'" in msg and f"Did you mean '{closest}'?" in msg, msg
    assert msg.endswith(f"Valid keys{f' of {section}' if section else ''}: {', '.join(sorted(keys_of.model_fields))}"), msg
    assert "Extra inputs" not in msg


def test_an_unknown_key_in_a_profile_names_the_file(tmp_path):
    profile = tmp_path / "mine.yaml"
    profile.write_text("sampling:\n  frames_per_clp: 4\n")
    with pytest.raises(ConfigError) as err:
        load_config(profile)
    assert f"unknown key 'frames_per_clp' in section 'sampling' (in {profile}). Did you mean 'frames_per_clip'?" in str(err.value)


def test_fingerprint_ignores_placement_but_not_results():
    a = PairsJobConfig()
    b = PairsJobConfig.model_validate({"resources": {"num_cpus": 1}})
    c = PairsJobConfig.model_validate({"clip_pairs": {"time_gap_s": 3}})
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


@pytest.mark.parametrize("override, field", [("sampling.frames_per_clip=0", "sampling.frames_per_clip"),
                                             ("proposal.accept_threshold=2", "proposal.accept_threshold")])
def test_job_exits_2_before_any_work(tmp_path, override, field):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "jobs/generate_pairs.py"), "--out", str(out), "--set", override],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert field in proc.stderr
    assert not out.exists(), "no work (not even the output folder) before the config is valid"


def test_missing_model_file_stops_before_ray_starts(tmp_path):
    from _paths import require_shared

    clip = require_shared("video/intel/one-by-one-person-detection.mp4")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "jobs/generate_pairs.py"), "--videos", str(clip), "--out", str(tmp_path / "o"),
         "--set", "sources.default_license=CC-BY-4.0", "--set", f"segmenter.model={tmp_path / 'missing.onnx'}"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "missing.onnx" in proc.stderr, proc.stderr
    assert "Started a local Ray" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("profile, override, field", [
    ("local.yaml", "proposal.accept_threshold=nan", "proposal.accept_threshold"),  # bounded: nan used to read as "> 1"
    ("local.yaml", "clip_pairs.clip_length_s=.inf", "clip_pairs.clip_length_s"),  # unbounded above: inf used to pass
    ("local.yaml", "quality.min_score_by_category.person=nan", "quality.min_score_by_category.person"),
    ("reid_local.yaml", "tracking.max_height_jump=inf", "tracking.max_height_jump"),
    ("reid_local.yaml", "clustering.threshold=-.inf", "clustering.threshold"),
])
def test_nan_and_inf_are_refused_naming_the_field(profile, override, field):
    from reid_ray.reid_config import ReidJobConfig

    model = ReidJobConfig if profile.startswith("reid") else PairsJobConfig
    with pytest.raises(ConfigError, match="finite number") as err:
        load_config(ROOT / "configs" / profile, [override], model)
    assert field in str(err.value)
