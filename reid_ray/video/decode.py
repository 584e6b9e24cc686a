"""Probe videos and read exact frames by 0-based index (PyAV / FFmpeg).

What is reliable, measured on the shared clips (see tests/test_decode.py):
  - Frame count: OpenCV's CAP_PROP_FRAME_COUNT is an estimate from bitrate and duration; for the CAVIAR
    MPEG-1 elementary streams it says 3-7 for files of 295-600 frames. PyAV's ``stream.frames`` is 0 there
    (no container index) and, in an MP4, is the index's claim, true even when the data is cut off. So we
    count the packets the demuxer delivers (no decoding, so cheap: README, Measured), check them against the index
    when there is one, and decode the last GOP with FFmpeg's error detection on, so that a file cut inside
    its last frame (which the decoder would otherwise conceal into a smeared frame) is reported truncated.
  - Frame index: a frame's index is the rank of its pts among all packet pts (display order). Not
    ``pts * time_base * fps``: the CAVIAR MPEG-1 streams jump from pts 0 to 2 frame durations at frame 1.
  - Seeking: OpenCV's CAP_PROP_POS_FRAMES on these MPEG-1 files lands on frame 54/55 whatever was asked;
    FFmpeg's seek there (no index, a byte search) can land on the keyframe *after* the one asked for. So we
    seek to the keyframe at or before the target, check where decoding actually resumed (by pts), step back
    a keyframe if it resumed too late, drop open-GOP leading B-frames (their reference precedes the seek
    point), and decode forward. Files whose packets lack unique pts are decoded sequentially from the start.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import os
import shutil
import tempfile
import uuid
from bisect import bisect_right
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator, Sequence

import av
import numpy as np
from boto3.exceptions import Boto3Error  # S3TransferFailedError and friends
from botocore.exceptions import BotoCoreError, ClientError

from reid_ray.config import SourcesConfig
from reid_ray.video.sources import make_s3_client, sanitize_id, split_s3_uri

_SEEK_RETRIES = 3  # keyframes to step back when a seek resumes after the target, before decoding from the start


class VideoDecodeError(Exception):
    """A video that cannot be read as asked; the message says why (it becomes an ERROR row)."""


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    n_frames: int
    width: int
    height: int
    duration_s: float


@dataclass(frozen=True)
class _Index:
    """What probing learnt: the info plus, when usable, the pts of every frame in display order."""

    info: VideoInfo
    pts: tuple[int, ...] | None  # None: timestamps missing or repeated -> sequential decoding only
    keyframes: tuple[int, ...]  # display indices of keyframes, ascending
    position: dict[int, int] = field(default_factory=dict, compare=False)  # pts -> display index


# ---------------------------------------------------------------------------------------------- S3 -> local


@contextmanager
def local_video(uri: str, cfg: SourcesConfig) -> Iterator[str]:
    """A local path for ``uri``: local paths pass through; s3:// objects are downloaded (cached by size)."""
    if not uri.startswith("s3://"):
        yield uri[len("file://") :] if uri.startswith("file://") else uri
        return
    temp_dir = None if cfg.cache_dir else tempfile.mkdtemp(prefix="reid_ray_video_")
    try:
        yield _download(uri, cfg, Path(cfg.cache_dir or temp_dir))
    finally:
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)


def content_fingerprint(uri: str, cfg: SourcesConfig) -> str:
    """What identifies a source's bytes without reading them: size and modification time of a file, size and ETag
    of an S3 object. A file replaced under the same name gets another fingerprint."""
    try:
        if uri.startswith("s3://"):
            bucket, key = split_s3_uri(uri)
            head = make_s3_client(cfg).head_object(Bucket=bucket, Key=key)
            return f"s3:{head['ContentLength']}:{head.get('ETag', '')}"
        st = os.stat(uri[len("file://"):] if uri.startswith("file://") else uri)
        return f"file:{st.st_size}:{st.st_mtime_ns}"
    except (OSError, ClientError, BotoCoreError, Boto3Error) as err:
        raise VideoDecodeError(f"source not readable: {uri} ({err})") from None


def _download(uri: str, cfg: SourcesConfig, cache: Path) -> str:
    bucket, key = split_s3_uri(uri)
    # Hash of the uri + a readable name: keys may hold '..' or clash by basename across prefixes.
    dest = cache / f"{hashlib.sha1(uri.encode()).hexdigest()[:16]}-{sanitize_id(PurePosixPath(key).name) or 'video'}"
    try:
        client = make_s3_client(cfg)
        size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        if dest.is_file() and dest.stat().st_size == size:
            return str(dest)
        cache.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(f"{dest.name}.{uuid.uuid4().hex}.part")
        try:
            client.download_file(bucket, key, str(part))
            os.replace(part, dest)  # atomic: concurrent actors never see a half-written file
        finally:
            part.unlink(missing_ok=True)
    except (ClientError, BotoCoreError, Boto3Error) as err:
        raise VideoDecodeError(f"s3 object not readable: {uri} ({err})") from None
    return str(dest)


# ---------------------------------------------------------------------------------------------- probing


def probe(path: str | os.PathLike) -> VideoInfo:
    """fps, exact frame count and size; raises VideoDecodeError for empty, non-video, truncated files."""
    return _scan(path).info


def _scan(path: str | os.PathLike) -> _Index:
    p = Path(path)
    if not p.is_file():
        raise VideoDecodeError(f"no such file: {p}")
    st = p.stat()
    if st.st_size == 0:
        raise VideoDecodeError(f"empty file: {p}")
    return _scan_cached(str(p.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=128)
def _scan_cached(path: str, size: int, mtime_ns: int) -> _Index:
    # size and mtime are part of the key so that a rewritten file is probed again.
    try:
        container = av.open(path)
    except (av.error.FFmpegError, UnicodeDecodeError) as err:
        raise VideoDecodeError(f"not a video or unsupported codec: {path} ({_ffmpeg_message(err)})") from None
    with container:
        if not container.streams.video:
            raise VideoDecodeError(f"not a video or unsupported codec: {path} (no video stream)")
        stream = container.streams.video[0]
        pts, key_pts, tail = _demux(container, stream, path)
        declared = stream.frames
        if declared > len(pts):  # the index promises frames whose data is not in the file
            raise VideoDecodeError(f"truncated: could only decode {len(pts)} of {declared} frames: {path}")
        width, height = _check_tail(stream, tail, len(pts), path)
        fps = _fps(stream, path)
    info = VideoInfo(fps=fps, n_frames=len(pts), width=width, height=height, duration_s=len(pts) / fps)
    return _make_index(info, pts, key_pts)


def _demux(container, stream, path: str) -> tuple[list[int | None], list[int | None], list]:
    """(pts of every packet, pts of keyframe packets, packets of the last two GOPs). Counting packets does
    not decode, so it is fast; a damaged or cut-off packet ends it with an error naming how many were whole."""
    pts: list[int | None] = []
    key_pts: list[int | None] = []
    prev_gop: list = []
    gop: list = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:  # flush packets; samples an edit list drops
                continue
            if packet.is_corrupt:
                raise VideoDecodeError(
                    f"truncated: could only decode {len(pts)} of {max(stream.frames, len(pts) + 1)} frames "
                    f"(packet {len(pts) + 1} is cut off or damaged): {path}"
                )
            if packet.is_keyframe:
                key_pts.append(packet.pts)
                prev_gop, gop = gop, []
            gop.append(packet)
            pts.append(packet.pts)
    except av.error.FFmpegError as err:
        raise VideoDecodeError(
            f"truncated: could only decode {len(pts)} of {max(stream.frames, len(pts))} frames "
            f"({_ffmpeg_message(err)}): {path}"
        ) from None
    if not pts:
        raise VideoDecodeError(f"not a video or unsupported codec: {path} (the video stream has no frames)")
    # Two GOPs: the last GOP's leading B-frames (open GOP) need the previous one, or the decoder drops
    # them unchecked, and a frame cut off there would go unnoticed.
    return pts, key_pts, prev_gop + gop


def _check_tail(stream, tail: list, n_packets: int, path: str) -> tuple[int, int]:
    """Decode the last GOPs strictly: a file cut inside a late frame fails here instead of being concealed
    (or silently dropped). Also proves the codec decodes at all, and gives the real frame size."""
    ctx = stream.codec_context
    ctx.options = {"err_detect": "explode"}  # without it FFmpeg conceals a cut-off frame as a smeared one
    n_ok, size, out_pts = 0, None, set()
    try:
        for packet in [*tail, None]:  # None flushes the decoder's delayed frames
            for frame in ctx.decode(packet):
                size = (frame.width, frame.height)
                out_pts.add(frame.pts)
            n_ok += packet is not None
    except av.error.FFmpegError as err:
        raise _tail_truncated(n_packets - len(tail) + n_ok, n_packets, _ffmpeg_message(err), path) from None
    except Exception as err:  # e.g. no decoder for this codec
        raise VideoDecodeError(f"not a video or unsupported codec: {path} ({err})") from None
    if size is None:
        raise VideoDecodeError(f"not a video or unsupported codec: {path} (no frame decodes)")
    # Every frame from the first keyframe of the window on must come out; only the window's own leading
    # B-frames (whose reference lies before it) may be dropped.
    start = tail[0].pts
    missing = sorted(p.pts for p in tail if p.pts is not None and p.pts >= start and p.pts not in out_pts)
    if start is not None and missing:
        good = n_packets - len(tail) + next(i for i, p in enumerate(tail) if p.pts == missing[0])
        raise _tail_truncated(good, n_packets, "the decoder dropped it", path)
    return size


def _tail_truncated(good: int, n_packets: int, why: str, path: str) -> VideoDecodeError:
    return VideoDecodeError(
        f"truncated: could only decode {good} of {n_packets} frames (frame {good + 1} is cut off or damaged: "
        f"{why}): {path}"
    )


def _fps(stream, path: str) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and float(rate) > 0:
            return float(rate)
    raise VideoDecodeError(f"not a video or unsupported codec: {path} (no frame rate)")


def _make_index(info: VideoInfo, pts: list[int | None], key_pts: list[int | None]) -> _Index:
    if any(p is None for p in pts) or len(set(pts)) != len(pts):
        return _Index(info, None, (0,))
    ordered = tuple(sorted(pts))  # type: ignore[arg-type]
    position = {p: i for i, p in enumerate(ordered)}
    keyframes = tuple(sorted(position[p] for p in key_pts)) or (0,)  # type: ignore[index]
    return _Index(info, ordered, keyframes, position)


def _ffmpeg_message(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err)


# ---------------------------------------------------------------------------------------------- reading


def read_frames(path: str | os.PathLike, indices: Sequence[int]) -> list[np.ndarray]:
    """RGB uint8 frames at these 0-based indices, in the order asked (repeats allowed)."""
    index = _scan(path)
    wanted = sorted({int(i) for i in indices})
    if not wanted:
        return []
    _check_range(wanted[0], wanted[-1], index.info.n_frames, path)
    got = {i: _rgb(frame) for i, frame in _decode_wanted(str(path), index, wanted)}
    out, seen = [], set()
    for i in indices:
        out.append(got[int(i)] if int(i) not in seen else got[int(i)].copy())  # repeats are not aliases
        seen.add(int(i))
    return out


def iter_frames(
    path: str | os.PathLike, start: int = 0, end: int | None = None, step: int = 1, max_side: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """(index, RGB frame) for range(start, end, step), end clipped to the video; frames whose longer side
    exceeds ``max_side`` are downscaled (aspect kept)."""
    if start < 0 or step < 1:
        raise ValueError(f"iter_frames needs start >= 0 and step >= 1 (got start={start}, step={step})")
    index = _scan(path)
    n = index.info.n_frames
    wanted = range(start, n if end is None else min(end, n), step)
    if len(wanted) == 0:
        return
    for i, frame in _decode_wanted(str(path), index, wanted):
        yield i, _rgb(frame, max_side)


def _check_range(lo: int, hi: int, n: int, path: str | os.PathLike) -> None:
    bad = lo if lo < 0 else hi
    if lo < 0 or hi >= n:
        raise VideoDecodeError(f"frame {bad} out of range: {path} has {n} frames (0..{n - 1})")


def _rgb(frame: av.VideoFrame, max_side: int | None = None) -> np.ndarray:
    w, h = frame.width, frame.height
    if max_side and max(h, w) > max_side:
        # One swscale pass converts and downscales (area filter): cheaper than converting at full size.
        scale = max_side / max(h, w)
        size = {"width": max(1, round(w * scale)), "height": max(1, round(h * scale)), "interpolation": "AREA"}
        frame = frame.reformat(format="rgb24", **size)
    return np.ascontiguousarray(frame.to_ndarray(format="rgb24"))


class _SeekMissed(Exception):
    """Decoding after a seek did not resume at or before the target (or gave unknown timestamps)."""


def _decode_wanted(path: str, index: _Index, wanted: Sequence[int]) -> Iterator[tuple[int, av.VideoFrame]]:
    """Each wanted index (ascending) exactly once with its frame; seeks when a later keyframe saves decoding."""
    n = index.info.n_frames
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        run: Iterator[tuple[int, av.VideoFrame]] | None = None
        pos = -1  # display index of the last frame the current run gave
        try:
            for target in wanted:
                if run is None or _worth_seeking(index, pos, target):
                    run = _start_run(container, stream, path, index, target)
                for i, frame in run:
                    pos = i
                    if i >= target:
                        break
                else:
                    raise VideoDecodeError(f"truncated: could only decode {pos + 1} of {n} frames: {path}")
                if i != target:  # the decoder skipped it (damaged data)
                    raise VideoDecodeError(f"frame {target} could not be decoded (decoding went on at {i}): {path}")
                yield i, frame
        except av.error.FFmpegError as err:
            raise VideoDecodeError(
                f"decoding failed after frame {pos} of {n} ({_ffmpeg_message(err)}): {path}"
            ) from None


def _worth_seeking(index: _Index, pos: int, target: int) -> bool:
    # Seek only when a keyframe lies strictly between where we are and the target: decoding on is cheaper.
    if index.pts is None:
        return False
    return _keyframe_at_or_before(index, target) > pos + 1


def _keyframe_at_or_before(index: _Index, target: int) -> int:
    return index.keyframes[max(bisect_right(index.keyframes, target) - 1, 0)]


def _start_run(container, stream, path: str, index: _Index, target: int) -> Iterator[tuple[int, av.VideoFrame]]:
    """A run of consecutive (index, frame) whose first index is <= target."""
    if index.pts is not None and _keyframe_at_or_before(index, target) > 0:
        k = bisect_right(index.keyframes, target) - 1
        for back in range(_SEEK_RETRIES):
            key = index.keyframes[max(k - back, 0)]
            if key == 0:
                break  # the start is reached: decode from the start below
            run = _seek_run(container, stream, index, key)
            try:
                first = next(run, None)
            except _SeekMissed:
                break
            if first is not None and first[0] <= target:
                return itertools.chain([first], _guard(run))
    return _from_start(path, index)


def _seek_run(container, stream, index: _Index, key: int) -> Iterator[tuple[int, av.VideoFrame]]:
    container.seek(index.pts[key], stream=stream, backward=True, any_frame=False)  # also flushes the decoder
    sync_pts = None
    for frame in container.decode(stream):
        if frame.pts not in index.position:
            raise _SeekMissed(f"unknown pts {frame.pts}")
        if sync_pts is None:
            if not frame.key_frame:
                continue  # frames before the first keyframe after a seek may reference missing data
            sync_pts = frame.pts
        elif frame.pts < sync_pts:
            continue  # open-GOP leading B-frame: its forward reference lies before the seek point
        yield index.position[frame.pts], frame


def _guard(run: Iterator[tuple[int, av.VideoFrame]]) -> Iterator[tuple[int, av.VideoFrame]]:
    # Once a run is accepted, an unknown timestamp mid-way is damage, not a missed seek.
    try:
        yield from run
    except _SeekMissed as err:
        raise VideoDecodeError(f"unexpected frame timestamp while decoding ({err})") from None


def _from_start(path: str, index: _Index) -> Iterator[tuple[int, av.VideoFrame]]:
    """Decode from the beginning in a fresh container: always right, the fallback for every doubt."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for count, frame in enumerate(container.decode(stream)):
            if index.pts is None:
                yield count, frame  # no usable timestamps: output order is display order
            elif frame.pts in index.position:
                yield index.position[frame.pts], frame
            else:
                raise VideoDecodeError(f"unexpected frame timestamp {frame.pts} while decoding: {path}")
