"""probe / read_frames / iter_frames / local_video on the real shared clips and on damaged copies of them."""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import av
import boto3
import numpy as np
import pytest

from _paths import require_shared
from reid_ray.config import SourcesConfig
from reid_ray.video import decode
from reid_ray.video.decode import VideoDecodeError, iter_frames, local_video, probe, read_frames

# (relative path, fps, width, height, frames). Frame counts were checked by full decoding with PyAV and
# with OpenCV's sequential read; OpenCV's CAP_PROP_FRAME_COUNT says 3-7 for the MPEG-1 files.
CLIPS = [
    ("video/caviar/EnterExitCrossingPaths1front.mpg", 25.0, 384, 288, 383),
    ("video/caviar/EnterExitCrossingPaths2front.mpg", 25.0, 384, 288, 485),
    ("video/caviar/OneLeaveShop1front.mpg", 25.0, 384, 288, 295),
    ("video/caviar/OneLeaveShopReenter1front.mpg", 25.0, 384, 288, 390),
    ("video/caviar/OneLeaveShopReenter2front.mpg", 25.0, 384, 288, 560),
    ("video/caviar/TwoLeaveShop2front.mpg", 25.0, 384, 288, 600),
    ("video/intel/one-by-one-person-detection.mp4", 10.0, 768, 432, 1394),
]
CAVIAR = "video/caviar/OneLeaveShop1front.mpg"  # GOP of 18 display frames, open GOPs (B-frames before each I)
INTEL = "video/intel/one-by-one-person-detection.mp4"  # H.264 with B-frames, keyframe every 10 frames


def _sequential(path: Path, wanted: set[int]) -> tuple[dict[int, np.ndarray], int]:
    """Reference: plain decode from the start, counting output frames (no seeking, no timestamps)."""
    frames: dict[int, np.ndarray] = {}
    count = 0
    with av.open(str(path)) as container:
        for count, frame in enumerate(container.decode(video=0), start=1):
            if count - 1 in wanted:
                frames[count - 1] = frame.to_ndarray(format="rgb24")
    return frames, count


def _cut_copy(src: Path, dest: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


# ---------------------------------------------------------------------------------------------- real clips


@pytest.mark.parametrize("rel, fps, width, height, n_frames", CLIPS, ids=[Path(c[0]).name for c in CLIPS])
def test_probe_real_clips(rel: str, fps: float, width: int, height: int, n_frames: int) -> None:
    path = require_shared(rel)
    decode._scan_cached.cache_clear()  # time a real probe, not the cache
    t0 = time.perf_counter()
    info = probe(path)
    elapsed = time.perf_counter() - t0
    print(f"{path.name}: {info} probed in {elapsed * 1000:.1f} ms")
    assert (info.fps, info.width, info.height, info.n_frames) == (fps, width, height, n_frames)
    assert info.duration_s == pytest.approx(n_frames / fps)
    assert elapsed < 1.0  # demux-only count plus one GOP decoded: ~15-25 ms here


def test_probe_count_matches_full_decode() -> None:
    for rel in (CAVIAR, INTEL):
        path = require_shared(rel)
        assert probe(path).n_frames == _sequential(path, set())[1]


@pytest.mark.parametrize("rel", [CAVIAR, INTEL], ids=["mpeg1", "h264"])
def test_read_frames_exact(rel: str) -> None:
    path = require_shared(rel)
    last = probe(path).n_frames - 1
    rng = np.random.default_rng(0)
    # Keyframe edges (16, 17: open-GOP B-frames before the I at 18 in CAVIAR; 9/10/11 in the H.264 clip),
    # scattered ones, the last; asked out of order with a repeat.
    indices = [150, 0, last, 17, 16, 18, 9, 10, 11, 1, last - 1, 150, *rng.integers(0, last, 12).tolist()]
    reference, _ = _sequential(path, set(indices))
    frames = read_frames(path, indices)
    assert len(frames) == len(indices)
    for i, frame in zip(indices, frames):
        assert frame.dtype == np.uint8 and frame.shape == reference[i].shape
        assert np.array_equal(frame, reference[i]), f"frame {i} differs from sequential decoding"
    assert frames[0] is not frames[11]  # the repeated index is a copy, not an alias
    for i in (17, 150, last):  # one at a time: every call seeks on its own
        assert np.array_equal(read_frames(path, [i])[0], reference[i])


@pytest.mark.parametrize("rel", [CAVIAR, INTEL], ids=["mpeg1", "h264"])
def test_iter_frames_matches_sequential(rel: str) -> None:
    path = require_shared(rel)
    n = probe(path).n_frames
    start, end, step = 5, n - 3, 23  # a step longer than a GOP makes it seek between frames
    expected = list(range(start, end, step))
    reference, _ = _sequential(path, set(expected))
    got = list(iter_frames(path, start, end, step))
    assert [i for i, _ in got] == expected
    assert all(np.array_equal(frame, reference[i]) for i, frame in got)


def test_iter_frames_whole_video_and_max_side() -> None:
    path = require_shared(CAVIAR)
    indices = [i for i, _ in iter_frames(path)]
    assert indices == list(range(probe(path).n_frames))
    i, small = next(iter_frames(path, start=40, max_side=192))
    assert i == 40 and small.shape == (144, 192, 3) and small.dtype == np.uint8
    assert list(iter_frames(path, start=10_000)) == []


def test_read_frames_out_of_range() -> None:
    path = require_shared(CAVIAR)
    n = probe(path).n_frames
    with pytest.raises(VideoDecodeError, match=f"frame {n} out of range.*has {n} frames"):
        read_frames(path, [0, n])
    with pytest.raises(VideoDecodeError, match="frame -1 out of range"):
        read_frames(path, [-1])
    assert read_frames(path, []) == []


# ---------------------------------------------------------------------------------------------- damaged files


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(VideoDecodeError, match="empty file"):
        probe(path)


def test_text_file_named_mp4(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("these are meeting notes, not a video\n" * 20)
    with pytest.raises(VideoDecodeError, match="not a video or unsupported codec"):
        probe(path)
    with pytest.raises(VideoDecodeError, match="not a video or unsupported codec"):
        read_frames(path, [0])


def test_zero_frame_video(tmp_path: Path) -> None:
    path = tmp_path / "zero.mp4"
    with av.open(str(path), "w") as container:  # a valid container whose video stream got no frames
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()  # writes the header; PyAV otherwise waits for a first frame
    assert path.stat().st_size > 0
    with pytest.raises(VideoDecodeError, match="not a video"):
        probe(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VideoDecodeError, match="no such file"):
        probe(tmp_path / "nope.mp4")


@pytest.mark.parametrize("rel", [CAVIAR, INTEL], ids=["mpeg1", "h264"])
def test_truncated_copy(rel: str, tmp_path: Path) -> None:
    src = require_shared(rel)
    path = _cut_copy(src, tmp_path / f"cut{src.suffix}", 0.3)
    n_full = probe(src).n_frames
    # MP4: the index promises all frames but the data stops; MPEG-1: the last frame is cut in the middle.
    with pytest.raises(VideoDecodeError, match=r"truncated: could only decode \d+ of \d+ frames") as err:
        probe(path)
    good = int(str(err.value).split("could only decode ")[1].split()[0])
    assert 0 < good < 0.5 * n_full
    for call in (lambda: read_frames(path, [n_full - 1]), lambda: read_frames(path, [0]), lambda: list(iter_frames(path))):
        with pytest.raises(VideoDecodeError, match="truncated"):
            call()


def test_cut_anywhere_never_gives_wrong_frames(tmp_path: Path) -> None:
    """Wherever an MPEG-1 file is cut, probing either refuses it or every frame read equals the original's."""
    src = require_shared(CAVIAR)
    reference, _ = _sequential(src, set(range(probe(src).n_frames)))
    for fraction in (0.05, 0.37, 0.61, 0.93):
        path = _cut_copy(src, tmp_path / f"cut{fraction}.mpg", fraction)
        try:
            info = probe(path)
        except VideoDecodeError as err:
            assert "truncated" in str(err)
            continue
        frames = read_frames(path, range(info.n_frames))
        assert all(np.array_equal(f, reference[i]) for i, f in enumerate(frames))


# ---------------------------------------------------------------------------------------------- S3


def _bucket_with(endpoint: str, objects: dict[str, bytes]) -> str:
    bucket = f"videos-{uuid.uuid4().hex[:10]}"
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=bucket)
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    return bucket


def test_local_video_downloads_from_s3(s3_server: str, tmp_path: Path) -> None:
    clip = require_shared(CAVIAR)
    bucket = _bucket_with(s3_server, {"videos/clip.mpg": clip.read_bytes(), "videos/bad.mp4": b"junk" * 100})
    cfg = SourcesConfig(s3_endpoint_url=s3_server, cache_dir=str(tmp_path / "cache"))
    with local_video(f"s3://{bucket}/videos/clip.mpg", cfg) as path:
        assert Path(path).read_bytes() == clip.read_bytes()
        assert probe(path).n_frames == probe(clip).n_frames
        first_mtime = Path(path).stat().st_mtime_ns
    with local_video(f"s3://{bucket}/videos/clip.mpg", cfg) as again:  # same size: the cached copy is reused
        assert again == path and Path(again).stat().st_mtime_ns == first_mtime
    assert not list((tmp_path / "cache").glob("*.part"))
    with local_video(f"s3://{bucket}/videos/bad.mp4", cfg) as bad:
        with pytest.raises(VideoDecodeError, match="not a video"):
            probe(bad)


def test_local_video_temp_dir_is_removed(s3_server: str) -> None:
    clip = require_shared(CAVIAR)
    bucket = _bucket_with(s3_server, {"a/clip.mpg": clip.read_bytes()})
    with local_video(f"s3://{bucket}/a/clip.mpg", SourcesConfig(s3_endpoint_url=s3_server)) as path:
        assert Path(path).stat().st_size == clip.stat().st_size
    assert not Path(path).exists()


def test_local_video_missing_key(s3_server: str) -> None:
    bucket = _bucket_with(s3_server, {"videos/present.mp4": b"x"})
    cfg = SourcesConfig(s3_endpoint_url=s3_server)
    with pytest.raises(VideoDecodeError, match=f"s3 object not readable: s3://{bucket}/videos/absent.mp4"):
        with local_video(f"s3://{bucket}/videos/absent.mp4", cfg):
            pass


def test_local_video_local_path_passes_through(tmp_path: Path) -> None:
    with local_video(str(tmp_path / "x.mp4"), SourcesConfig()) as path:
        assert path == str(tmp_path / "x.mp4")
