"""safe_name: any video id -> a bounded, collision-free, stable file-name component; plain ids keep their name.
Checked on a real file system: every name is created as a folder and a file, side by side."""
import hashlib
import random

import pytest

from reid_ray.names import MAX_BYTES, OWN_OUTPUTS, safe_name

AWKWARD = [
    "x" * 300, "视频", "видео", "a/b", "a\\b", "a_b", "errors", "report.json", "_run.json", "_routing.json", "sources",
    "Errors", "SOURCES", "", ".", "..", ".hidden", "-rf", "a.", "nul", "con.mp4", "cam 1", "cam_1", "tab\there", "new\nline",
    "emoji 🎥", "é", "e\u0301", "\udcff", "x" * 100, "x" * 101, "y" * 299 + "/", "~", "a~b", "a" + "~" + "0" * 16,
]


def test_plain_ids_keep_their_name():
    for vid in ("cam_1", "OneLeaveShop1front", "short", "clip-final_2.v3", "a" * MAX_BYTES):
        assert safe_name(vid) == vid


@pytest.mark.parametrize("vid", AWKWARD)
def test_names_are_bounded_ascii_and_not_the_jobs_own(vid):
    name = safe_name(vid)
    assert name.isascii() and 0 < len(name.encode()) <= MAX_BYTES
    assert not name.startswith((".", "-")) and "/" not in name and "\\" not in name and "\x00" not in name
    assert name.lower() not in OWN_OUTPUTS | {"_run.json", "_routing.json", "_stats", ".", ".."}
    assert "~" in name or not name.startswith("_")  # "_name" is the jobs' own (private files to come)


def test_distinct_ids_get_distinct_names_even_where_a_sanitiser_would_merge_them():
    assert safe_name("视频") != safe_name("видео")
    assert safe_name("a/b") != safe_name("a\\b") != safe_name("a_b")
    assert safe_name("é") != safe_name("e\u0301")  # the exact id, not a normalised one
    rng = random.Random(0)
    alphabet = "ab_./\\ -~é视0"
    ids = set(AWKWARD) | {"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12))) for _ in range(20000)}
    names = {safe_name(v) for v in ids}
    assert len(names) == len(ids)


def test_hashed_names_are_readable_and_stable():
    # the same bytes on every machine and run: a slug plus SHA-256 of the exact id
    assert safe_name("a/b") == "a_b~" + hashlib.sha256(b"a/b").hexdigest()[:16] == "a_b~c14cddc033f64b9d"
    assert safe_name("errors") == "errors~be4bd56772770471"
    assert safe_name("视频").startswith("id~") and safe_name("x" * 300).startswith("x" * 60 + "~")


def test_every_name_is_a_usable_file_and_folder(tmp_path):
    names = [safe_name(v) for v in AWKWARD]
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text("{}")
        (tmp_path / f"{name}.parquet").write_bytes(b"x")
    assert len({p.name for p in tmp_path.iterdir()}) == 2 * len(AWKWARD)
