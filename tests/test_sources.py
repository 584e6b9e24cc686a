"""list_sources: folders, files, manifests (parquet / csv / jsonl / json), licences, duplicates, S3 prefixes."""
from __future__ import annotations

import csv
import json
import uuid
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _paths import require_shared
from reid_ray.config import SourcesConfig
from reid_ray.schemas import ERROR, VIDEO, table_from_rows
from reid_ray.video.sources import SourceError, list_sources

CAVIAR = "video/caviar/OneLeaveShop1front.mpg"
OPEN = SourcesConfig(default_license="CC-BY-4.0")  # plain files and S3 keys get an allowed licence


def _touch(path: Path, data: bytes = b"\x00") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _check_schemas(videos: list[dict], errors: list[dict]) -> None:
    # The rows must build tables of exactly these schemas (a missing or mistyped field fails here).
    assert table_from_rows(videos, VIDEO).num_rows == len(videos)
    assert table_from_rows(errors, ERROR).num_rows == len(errors)


# ---------------------------------------------------------------------------------------------- files, folders


def test_folder_is_recursive_sorted_and_filtered(tmp_path: Path) -> None:
    _touch(tmp_path / "b" / "walk.mp4")
    _touch(tmp_path / "a" / "walk.MPG")  # same stem, upper-case suffix
    _touch(tmp_path / "a" / "deep" / "shop.avi")
    _touch(tmp_path / "notes.txt")
    _touch(tmp_path / "manifest.csv")
    videos, errors = list_sources(str(tmp_path), OPEN)
    _check_schemas(videos, errors)
    assert errors == []
    assert [Path(v["uri"]).relative_to(tmp_path).as_posix() for v in videos] == [
        "a/deep/shop.avi",
        "a/walk.MPG",
        "b/walk.mp4",
    ]
    ids = [v["video_id"] for v in videos]
    assert ids[:2] == ["shop", "walk"] and ids[2].startswith("walk-") and len(set(ids)) == 3
    assert all(v["license"] == "CC-BY-4.0" and v["metadata"] == "{}" for v in videos)
    assert list_sources(str(tmp_path), OPEN) == (videos, errors)  # deterministic


def test_explicit_non_video_file_is_listed(tmp_path: Path) -> None:
    path = _touch(tmp_path / "clip (final) #2.bin")
    videos, errors = list_sources(str(path), OPEN)
    assert errors == [] and videos[0]["uri"] == str(path.resolve())
    assert videos[0]["video_id"] == "clip_final_2"  # sanitised to [A-Za-z0-9_.-]


def test_real_clip_and_comma_separated_specs(tmp_path: Path) -> None:
    clip = require_shared(CAVIAR)
    other = _touch(tmp_path / "OneLeaveShop1front.mp4")
    videos, errors = list_sources(f"{clip}, {tmp_path}", OPEN)
    assert errors == []
    assert [v["uri"] for v in videos] == [str(clip.resolve()), str(other.resolve())]
    assert videos[0]["video_id"] == "OneLeaveShop1front" and videos[1]["video_id"].startswith("OneLeaveShop1front-")


def test_same_file_twice_is_a_duplicate(tmp_path: Path) -> None:
    path = _touch(tmp_path / "x.mp4")
    videos, errors = list_sources(f"{path},{tmp_path}", OPEN)
    assert len(videos) == 1
    assert [e["error_type"] for e in errors] == ["duplicate"] and "already listed as 'x'" in errors[0]["message"]


def test_nonexistent_spec_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        list_sources(str(tmp_path / "missing"), OPEN)
    _touch(tmp_path / "x.mp4")
    with pytest.raises(SourceError, match="nope.mp4' does not exist"):  # one bad part stops the job
        list_sources(f"{tmp_path},{tmp_path / 'nope.mp4'}", OPEN)
    with pytest.raises(SourceError, match="no source given"):
        list_sources(" , ", OPEN)


# ---------------------------------------------------------------------------------------------- licences


def test_no_default_license_refuses_plain_files(tmp_path: Path) -> None:
    _touch(tmp_path / "x.mp4")
    videos, errors = list_sources(str(tmp_path), SourcesConfig())
    _check_schemas(videos, errors)
    assert videos == []
    (err,) = errors
    assert (err["stage"], err["error_type"], err["video_id"]) == ("sources", "license", "x")
    assert "no licence" in err["message"] and "CC-BY-4.0" in err["message"]


def test_default_license_not_allowed(tmp_path: Path) -> None:
    _touch(tmp_path / "x.mp4")
    cfg = SourcesConfig(default_license="all-rights-reserved")
    videos, errors = list_sources(str(tmp_path), cfg)
    assert videos == [] and errors[0]["error_type"] == "license"
    assert "'all-rights-reserved' is not allowed" in errors[0]["message"] and "synthetic" in errors[0]["message"]


# ---------------------------------------------------------------------------------------------- manifests

# Row 1: relative uri + extra columns; 2: absolute; 3: licence not allowed; 4: no licence (default used when
# set); 5: no uri; 6: duplicate video_id; 7: s3 uri (not checked here); 8: a uri that does not exist.
def _manifest_rows(tmp_path: Path, clip: Path) -> list[dict]:
    for name in ("b", "c", "d", "other"):
        _touch(tmp_path / "media" / f"{name}.mp4")
    return [
        {"video_id": "cam 1", "uri": "media/b.mp4", "license": "CC-BY-4.0", "site": "lab", "fps_hint": 25},
        {"video_id": "shop", "uri": str(clip), "license": "CAVIAR-research", "site": "", "fps_hint": None},
        {"video_id": "tv", "uri": "media/c.mp4", "license": "proprietary", "site": "", "fps_hint": None},
        {"video_id": "nolic", "uri": "./media/../media/d.mp4", "license": "", "site": "", "fps_hint": None},
        {"video_id": "nouri", "uri": "", "license": "CC-BY-4.0", "site": "", "fps_hint": None},
        {"video_id": "shop", "uri": "media/other.mp4", "license": "CC-BY-4.0", "site": "", "fps_hint": None},
        {"video_id": "remote", "uri": "s3://bucket/v/r.mp4", "license": "synthetic", "site": "", "fps_hint": None},
        {"video_id": "gone", "uri": "media/gone.mp4", "license": "synthetic", "site": "", "fps_hint": None},
    ]


def _write_manifest(fmt: str, folder: Path, rows: list[dict]) -> Path:
    path = folder / f"manifest.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif fmt == "csv":
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        path.write_text(json.dumps(rows, indent=2))
    return path


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "json"])
def test_manifest_formats(fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = require_shared(CAVIAR)
    rows = _manifest_rows(tmp_path, clip)
    manifest = _write_manifest(fmt, tmp_path, rows)
    # Run from another folder: relative uris must resolve against the manifest's folder, not the cwd.
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    videos, errors = list_sources(str(manifest), SourcesConfig())
    _check_schemas(videos, errors)

    assert [v["video_id"] for v in videos] == ["cam 1", "shop", "remote"]  # manifest ids exactly (files: safe_name)
    assert videos[0]["uri"] == str((tmp_path / "media" / "b.mp4").resolve())
    assert videos[1]["uri"] == str(clip.resolve()) and videos[1]["license"] == "CAVIAR-research"
    assert videos[2]["uri"] == "s3://bucket/v/r.mp4"
    meta = json.loads(videos[0]["metadata"])
    assert meta["site"] == "lab" and str(meta["fps_hint"]) in ("25", "25.0")

    by_id = {e["video_id"]: e for e in errors}
    assert by_id["tv"]["error_type"] == "license" and "'proprietary' is not allowed" in by_id["tv"]["message"]
    assert by_id["nolic"]["error_type"] == "license" and "no licence" in by_id["nolic"]["message"]
    where = "row 5" if fmt == "parquet" else "item 5" if fmt == "json" else "line 6" if fmt == "csv" else "line 5"
    assert by_id["nouri"]["error_type"] == "manifest" and f"{where}: missing 'uri'" in by_id["nouri"]["message"]
    dup = [e for e in errors if e["error_type"] == "duplicate"]
    assert len(dup) == 1 and "duplicate video_id 'shop'" in dup[0]["message"]
    assert by_id["gone"]["error_type"] == "missing" and "gone.mp4 does not exist" in by_id["gone"]["message"]
    assert len(errors) == 5 and all(e["stage"] == "sources" for e in errors)

    # With a default licence the unlicensed row is used; the not-allowed one stays refused.
    videos, errors = list_sources(str(manifest), SourcesConfig(default_license="synthetic"))
    assert "nolic" in [v["video_id"] for v in videos] and "tv" not in [v["video_id"] for v in videos]


def test_manifest_without_uri_column_raises(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("video_id,path,license\na,x.mp4,synthetic\n")
    with pytest.raises(SourceError, match="no 'uri' column"):
        list_sources(str(path), OPEN)


def test_jsonl_bad_line_is_an_error_row(tmp_path: Path) -> None:
    _touch(tmp_path / "a.mp4")
    path = tmp_path / "m.jsonl"
    path.write_text('{"uri": "a.mp4", "license": "synthetic"}\n\n{not json\n[1, 2]\n')
    videos, errors = list_sources(str(path), SourcesConfig())
    assert [v["video_id"] for v in videos] == ["a"]  # no video_id column: the file stem
    assert ["line 3: not valid JSON" in errors[0]["message"], "line 4: not a JSON object" in errors[1]["message"]] == [
        True,
        True,
    ]


# ---------------------------------------------------------------------------------------------- S3


def _bucket_with(endpoint: str, objects: dict[str, bytes]) -> str:
    bucket = f"src-{uuid.uuid4().hex[:10]}"
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=bucket)
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    return bucket


def test_s3_prefix(s3_server: str) -> None:
    clip = require_shared(CAVIAR)
    bucket = _bucket_with(
        s3_server,
        {
            "videos/OneLeaveShop1front.mpg": clip.read_bytes(),
            "videos/sub/corrupt.mp4": b"not a video at all" * 10,
            "videos/readme.txt": b"text",
            "other/skip.mp4": b"x",
        },
    )
    cfg = SourcesConfig(default_license="CAVIAR-research", s3_endpoint_url=s3_server)
    videos, errors = list_sources(f"s3://{bucket}/videos/", cfg)
    _check_schemas(videos, errors)
    assert errors == []
    assert [(v["video_id"], v["uri"], v["license"]) for v in videos] == [
        ("OneLeaveShop1front", f"s3://{bucket}/videos/OneLeaveShop1front.mpg", "CAVIAR-research"),
        ("corrupt", f"s3://{bucket}/videos/sub/corrupt.mp4", "CAVIAR-research"),
    ]
    # A key named exactly is listed whatever its suffix; no default licence -> licence error rows.
    videos, errors = list_sources(f"s3://{bucket}/videos/readme.txt", cfg)
    assert [v["uri"] for v in videos] == [f"s3://{bucket}/videos/readme.txt"]
    videos, errors = list_sources(f"s3://{bucket}/videos/", SourcesConfig(s3_endpoint_url=s3_server))
    assert videos == [] and [e["error_type"] for e in errors] == ["license", "license"]


def test_s3_endpoint_from_environment(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = _bucket_with(s3_server, {"v/a.mp4": b"x"})
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)  # cfg.s3_endpoint_url is None: boto3 reads this
    videos, _ = list_sources(f"s3://{bucket}/v", OPEN)
    assert [v["uri"] for v in videos] == [f"s3://{bucket}/v/a.mp4"]


def test_s3_missing_prefix_or_bucket_raises(s3_server: str) -> None:
    bucket = _bucket_with(s3_server, {"v/a.mp4": b"x"})
    cfg = SourcesConfig(default_license="synthetic", s3_endpoint_url=s3_server)
    with pytest.raises(SourceError, match="no objects under that prefix"):
        list_sources(f"s3://{bucket}/nothing/", cfg)
    with pytest.raises(SourceError, match="cannot be listed"):
        list_sources(f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/v/", cfg)


def test_s3_manifest_resolves_relative_keys(s3_server: str) -> None:
    manifest = "video_id,uri,license,camera\nc1,clips/a.mp4,synthetic,north\nc2,s3://elsewhere/b.mp4,CC-BY-4.0,\n"
    bucket = _bucket_with(s3_server, {"sets/one/manifest.csv": manifest.encode(), "sets/one/clips/a.mp4": b"x"})
    videos, errors = list_sources(f"s3://{bucket}/sets/one/manifest.csv", SourcesConfig(s3_endpoint_url=s3_server))
    assert errors == []
    assert [(v["video_id"], v["uri"]) for v in videos] == [
        ("c1", f"s3://{bucket}/sets/one/clips/a.mp4"),
        ("c2", "s3://elsewhere/b.mp4"),
    ]
    assert json.loads(videos[0]["metadata"]) == {"camera": "north"}


def test_manifest_ids_are_kept_exactly_and_never_merged(tmp_path: Path) -> None:
    """Ids that one sanitiser would fold together ('视频' and 'видео' -> '_') stay two videos."""
    ids = ["视频", "видео", "a/b", "a\\b", "x" * 300]
    lines = ["video_id,uri,license"] + [f'"{vid}",{_touch(tmp_path / f"v{i}.mp4").name},synthetic' for i, vid in enumerate(ids)]
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    videos, errors = list_sources(str(tmp_path / "manifest.csv"), SourcesConfig())
    assert errors == [] and [v["video_id"] for v in videos] == ids
