"""Typed configuration: profiles load, overrides apply, bad values stop with the field named and exit 2."""
import subprocess
import sys
from pathlib import Path

import pytest

from reid_ray.config import (
    CalibrationConfig,
    ClipPairsConfig,
    ConfigError,
    EmbedderChoice,
    PairsJobConfig,
    ReidJobConfig,
    TrackingConfig,
    TrainConfig,
    TrainingSetJobConfig,
    load_config,
)

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
    from reid_ray.config import ReidJobConfig

    model = ReidJobConfig if profile.startswith("reid") else PairsJobConfig
    with pytest.raises(ConfigError, match="finite number") as err:
        load_config(ROOT / "configs" / profile, [override], model)
    assert field in str(err.value)


def _stated_leaves(model: type, stated: dict, path: tuple = ()):
    """(path, value) of every key a profile states; a section (sub-model) is walked, any other value is one leaf."""
    for key, value in stated.items():
        annotation = model.model_fields[key].annotation
        section = annotation if isinstance(annotation, type) and hasattr(annotation, "model_fields") else None
        if section is not None and isinstance(value, dict):
            yield from _stated_leaves(section, value, (*path, key))
        else:
            yield (*path, key), value


def _at(data: dict, path: tuple):
    for key in path:
        data = data[key]
    return data


@pytest.mark.parametrize("profile, model", [(p, models[0]) for p, models in PROFILES.items()])
def test_a_profile_states_only_what_differs_from_the_code_defaults(profile, model):
    """The code defaults are the CPU profiles (which state at most models_dir); every key any profile states
    changes a default, and every key it leaves out keeps it (also inside a section it states)."""
    import yaml

    stated = yaml.safe_load((ROOT / "configs" / profile).read_text()) or {}
    defaults, loaded = model().model_dump(mode="json"), load_config(ROOT / "configs" / profile, model=model).model_dump(mode="json")
    leaves = dict(_stated_leaves(model, stated))
    same = [".".join(p) for p in leaves if _at(loaded, p) == _at(defaults, p)]
    assert not same, f"{profile} states defaults: {same}"
    assert loaded == model.model_validate(_merged_by_hand(defaults, leaves)).model_dump(mode="json")
    if profile in ("local.yaml", "reid_local.yaml", "train.yaml"):
        assert set(leaves) <= {("models_dir",)}


def _merged_by_hand(defaults: dict, leaves: dict) -> dict:
    import copy

    data = copy.deepcopy(defaults)
    for path, value in leaves.items():
        _at(data, path[:-1])[path[-1]] = value
    return data


@pytest.mark.parametrize("profile, model, fingerprint", [
    ("local.yaml", PairsJobConfig, "2c59a3b283f65523"), ("gpu.yaml", PairsJobConfig, "dca23d4f0a6967ed"),
    ("bench_scale.yaml", PairsJobConfig, "fa33a02461282886"),
    ("reid_local.yaml", ReidJobConfig, "dfac2869b1a88dcf"), ("reid_gpu.yaml", ReidJobConfig, "39c815f9cf60df07"),
    ("reid_local.yaml", TrainingSetJobConfig, "0fff443ba161f2fc"), ("reid_gpu.yaml", TrainingSetJobConfig, "df0156aca588f73a"),
])
def test_a_profile_keeps_the_fingerprint_of_its_earlier_runs(profile, model, fingerprint):
    """Runs resume by fingerprint: moving a default between the code and a profile must not change one."""
    assert load_config(ROOT / "configs" / profile, model=model).fingerprint() == fingerprint


def test_an_override_changes_one_key_and_keeps_the_rest_of_its_section():
    """``--set a.b.c=v`` on a profile that does not state section ``a.b``: the other keys of ``a.b`` keep the job's
    own defaults. Before the configuration package such a section started from the bare section class: this one
    override reset the decode actors from 0.5 CPU x 2 to 1 CPU x 1. An override inside a mapping keeps its
    neighbours: the person embedder stays OSNet with another head."""
    cfg = load_config(ROOT / "configs" / "local.yaml", ["resources.decode.batch_size=2", "embedder.by_category.person.head=ckpt.pt"])
    defaults = PairsJobConfig()
    assert cfg.resources.decode.batch_size == 2
    assert cfg.resources.decode.model_dump(exclude={"batch_size"}) == defaults.resources.decode.model_dump(exclude={"batch_size"})
    person = cfg.embedder.by_category["person"]
    assert person.head == "ckpt.pt" and person.backend == defaults.embedder.by_category["person"].backend == "osnet_x0_25"
