"""SAM3 segmenter and DINO patch embedder through the real transformers classes, with tiny random weights.

The checkpoints are built in the test (``tests/tiny_models.py``: the same model classes with tiny random-weight
configs), saved with ``save_pretrained`` and loaded from that directory the way a real checkpoint is. Random weights
test code paths only -- shapes, dtypes, ids, mask/box bookkeeping, token indexing -- never segmentation or
embedding quality.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reid_ray.models.base import PatchEmbedder, Segmenter
from reid_ray.records import Instances

from tiny_models import build_tiny_dinov2, build_tiny_dinov3, build_tiny_sam3

CLIP = Path("/work/shared/video/caviar/OneLeaveShopReenter1front.mpg")
CATEGORIES = {"person": ["person"], "product": ["bag"]}


def _read_frames(path: Path, n: int, size: tuple[int, int]) -> list[np.ndarray]:
    cv2 = pytest.importorskip("cv2")
    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while len(frames) < n:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), size, interpolation=cv2.INTER_AREA))
    finally:
        cap.release()
    return frames


# ---------------------------------------------------------------- SAM3


@pytest.fixture(scope="module")
def sam3_dir(tmp_path_factory) -> str:
    return build_tiny_sam3(tmp_path_factory.mktemp("tiny_sam3"))


@pytest.fixture(scope="module")
def segmenter(sam3_dir):
    from reid_ray.models.sam3 import Sam3Segmenter

    return Sam3Segmenter(model=sam3_dir, categories=CATEGORIES, score_threshold=0.0, device="cpu")


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    if not CLIP.exists():
        pytest.skip(f"{CLIP} not available")
    frames = _read_frames(CLIP, 4, (192, 144))  # CAVIAR is 384 x 288; half size keeps the test fast
    if len(frames) < 4:
        pytest.skip(f"could not read 4 frames from {CLIP}")
    return frames


@pytest.fixture(scope="module")
def sam3_results(segmenter, clip_frames) -> list[Instances]:
    return segmenter.segment(clip_frames)


def test_sam3_instances_per_frame(segmenter, clip_frames, sam3_results):
    assert isinstance(segmenter, Segmenter)
    assert len(sam3_results) == len(clip_frames)
    h, w = clip_frames[0].shape[:2]
    assert sum(len(r) for r in sam3_results) > 0, "thresholds at 0: the random model must return objects"
    for inst in sam3_results:
        assert isinstance(inst, Instances)
        n = len(inst)
        assert inst.masks is not None and inst.masks.dtype == bool and inst.masks.shape == (n, h, w)
        assert inst.boxes.shape == (n, 4) and inst.boxes.dtype == np.float32
        assert inst.scores.shape == (n,) and inst.scores.dtype == np.float32
        assert inst.track_ids is not None and inst.track_ids.dtype == np.int64
        assert set(inst.categories) <= set(CATEGORIES)
        assert len(set(inst.track_ids.tolist())) == n, "track ids unique within a frame"
        assert set(inst.extra["prompt"]) <= {p for ps in CATEGORIES.values() for p in ps}


def test_sam3_boxes_enclose_masks_tightly(sam3_results):
    for inst in sam3_results:
        for box, mask in zip(inst.boxes, inst.masks):
            assert mask.any(), "empty masks are dropped"
            x1, y1, x2, y2 = box.astype(int)
            assert (box == box.round()).all() and 0 <= x1 < x2 <= mask.shape[1] and 0 <= y1 < y2 <= mask.shape[0]
            assert mask[y1:y2, x1:x2].sum() == mask.sum(), "the box holds the whole mask"
            assert mask[y1, x1:x2].any() and mask[y2 - 1, x1:x2].any(), "tight in y"
            assert mask[y1:y2, x1].any() and mask[y1:y2, x2 - 1].any(), "tight in x"


def test_sam3_track_ids_stable(sam3_results):
    seen: dict[int, tuple[str, str]] = {}
    frames_seen: dict[int, int] = {}
    for inst in sam3_results:
        for tid, cat, prompt in zip(inst.track_ids.tolist(), inst.categories, inst.extra["prompt"]):
            assert seen.setdefault(tid, (cat, prompt)) == (cat, prompt), "one object id, one category and prompt"
            assert CATEGORIES[cat].count(prompt) == 1
            frames_seen[tid] = frames_seen.get(tid, 0) + 1
    assert max(frames_seen.values()) > 1, "some object is followed over more than one frame"


def test_sam3_track_and_edge_cases(segmenter, clip_frames):
    tracked = segmenter.track(clip_frames[:2])
    assert len(tracked) == 2 and all(r.masks.shape[1:] == clip_frames[0].shape[:2] for r in tracked)
    assert segmenter.segment([]) == []
    with pytest.raises(ValueError):
        segmenter.segment([clip_frames[0], clip_frames[0][:100]])


def test_sam3_score_threshold_filters(sam3_dir):
    from reid_ray.models.sam3 import Sam3Segmenter

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (64, 80, 3), dtype=np.uint8) for _ in range(2)]
    strict = Sam3Segmenter(model=sam3_dir, categories={"person": ["person"]}, score_threshold=1.0)
    out = strict.segment(frames)
    assert [len(r) for r in out] == [0, 0]
    assert out[0].masks.shape == (0, 64, 80)


def test_boxes_from_masks():
    from reid_ray.models.sam3 import boxes_from_masks

    masks = np.zeros((2, 10, 12), bool)
    masks[0, 2:5, 3:9] = True
    np.testing.assert_array_equal(boxes_from_masks(masks), [[3, 2, 9, 5], [0, 0, 0, 0]])


# ---------------------------------------------------------------- DINO


@pytest.fixture(scope="module", params=["dinov2", "dinov3"])
def embedder(request, tmp_path_factory):
    from reid_ray.models.dino import DinoPatchEmbedder

    build = {"dinov2": build_tiny_dinov2, "dinov3": build_tiny_dinov3}[request.param]
    model_dir = build(tmp_path_factory.mktemp(f"tiny_{request.param}"))
    return DinoPatchEmbedder(model=model_dir, crop_height=224, crop_width=112, device="cpu")


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)


def test_dino_patch_sets_shape(embedder, frame):
    assert isinstance(embedder, PatchEmbedder)
    assert embedder.dim == embedder.model.config.hidden_size == 48
    boxes = [[40, 30, 120, 200], [200, 50, 260, 230], [0, 0, 3, 2]]  # the last: a few pixels in the corner
    sets = embedder.patch_sets(frame, Instances.from_arrays(boxes, [1, 1, 1], ["person"] * 3))
    assert len(sets) == 3
    gh, gw = embedder.grid
    for s in sets:
        assert s.dtype == np.float32 and s.ndim == 2 and s.shape[1] == embedder.dim
        assert 1 <= len(s) <= gh * gw
        assert np.isfinite(s).all()


def test_dino_mask_restricts_patches(embedder, frame):
    box = [40, 30, 120, 200]
    full = np.zeros((1, *frame.shape[:2]), bool)
    full[0, 30:200, 40:120] = True
    left = np.zeros_like(full)
    left[0, 30:200, 40:80] = True
    with_full = embedder.patch_sets(frame, Instances.from_arrays([box], [1], ["person"], masks=full))[0]
    with_left = embedder.patch_sets(frame, Instances.from_arrays([box], [1], ["person"], masks=left))[0]
    boxes_only = embedder.patch_sets(frame, Instances.from_arrays([box], [1], ["person"]))[0]
    assert len(boxes_only) == len(with_full), "no mask: the box is the mask"
    assert 0.35 <= len(with_left) / len(with_full) <= 0.65
    # the left-half patches are a subset of the full-box patches (same crop, same tokens)
    full_rows = {r.tobytes() for r in with_full}
    assert all(r.tobytes() in full_rows for r in with_left)


def test_dino_tiny_mask_keeps_one_patch(embedder, frame):
    mask = np.zeros((1, *frame.shape[:2]), bool)
    mask[0, 100, 100] = True  # one pixel of a large box: covers no patch by half
    sets = embedder.patch_sets(frame, Instances.from_arrays([[20, 20, 200, 220]], [1], ["person"], masks=mask))
    assert sets[0].shape == (1, embedder.dim)


def test_dino_tokens_skip_cls_and_registers(embedder):
    """A full-frame instance of a frame already at crop size gives exactly the model's patch tokens, in order."""
    import torch

    h, w = embedder.crop_height, embedder.crop_width
    img = np.random.default_rng(2).integers(0, 255, (h, w, 3), dtype=np.uint8)
    inst = Instances.from_arrays([[0, 0, w, h]], [1], ["person"], masks=np.ones((1, h, w), bool))
    got = embedder.patch_sets(img, inst)[0]
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    x = (x - embedder.mean) / embedder.std
    with torch.inference_mode():
        hidden = embedder.model(pixel_values=x).last_hidden_state[0]
    assert hidden.shape[0] == embedder.num_prefix_tokens + embedder.grid[0] * embedder.grid[1]
    np.testing.assert_allclose(got, hidden[embedder.num_prefix_tokens :].numpy(), atol=1e-5)


def test_dino_empty_instances(embedder, frame):
    assert embedder.patch_sets(frame, Instances.empty()) == []
