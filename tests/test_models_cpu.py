"""The CPU profile's real-weight models on real frames: YOLOX-nano, dlib faces, EfficientNet-Lite0, TransNetV2."""
import numpy as np
import pytest

from _paths import require_shared
from reid_ray.config import SegmenterConfig
from reid_ray.records import Instances

CAVIAR_REENTER = "video/caviar/OneLeaveShopReenter1front.mpg"


def read_rgb(path, indices):
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames, i, want = {}, 0, set(indices)
    while want - frames.keys():
        ok, f = cap.read()
        if not ok:
            break
        if i in want:
            frames[i] = f[:, :, ::-1].copy()
        i += 1
    return [frames[i] for i in indices]


@pytest.fixture(scope="module")
def yolox():
    from reid_ray.models.yolox import YoloxDetector

    return YoloxDetector(require_shared("models/yolox_nano_coco.onnx"), SegmenterConfig().categories)


def test_yolox_finds_the_people_of_a_real_clip(yolox):
    frames = read_rgb(require_shared(CAVIAR_REENTER), [80, 120, 160])
    found = [yolox.detect(f) for f in frames]
    assert all(len(i) >= 1 for i in found), [len(i) for i in found]
    for inst, frame in zip(found, frames):
        assert set(inst.categories) <= {"person", "animal", "product"}
        assert (inst.boxes[:, 2] > inst.boxes[:, 0]).all() and (inst.boxes[:, 3] <= frame.shape[0]).all()
        people = inst.select(inst.categories == "person")
        h = people.boxes[:, 3] - people.boxes[:, 1]
        assert ((h > 30) & (h < 120)).all(), "CAVIAR people are 40-60 px tall"


def test_yolox_decodes_hand_made_raw_outputs_to_known_boxes(yolox):
    """The library's decoder on raw outputs written by hand (416 input: anchors of stride 8, 16, 32 on 52, 26, 13
    cells, x fastest; columns dx, dy, log w, log h in strides, objectness, 80 COCO class scores), letterbox ratio
    0.5. Boxes worked out on paper: centre = (cell + d) * stride, size = exp(log) * stride, then / 0.5."""
    raw = np.zeros((52 * 52 + 26 * 26 + 13 * 13, 85), np.float32)

    def anchor(stride: int, x: int, y: int) -> int:
        first = {8: 0, 16: 52 * 52, 32: 52 * 52 + 26 * 26}[stride]
        return first + y * (416 // stride) + x

    person = anchor(8, 10, 5)  # centre (84, 42), 32 x 64: (68, 10, 100, 74) on the model's input
    raw[person, :5] = (0.5, 0.25, np.log(4), np.log(8), 0.9)
    raw[person, 5 + 0] = 0.8  # COCO 0: person
    weaker_twin = anchor(8, 11, 5)  # the same box, lower score: NMS drops it
    raw[weaker_twin, :5] = (-0.5, 0.25, np.log(4), np.log(8), 0.9)
    raw[weaker_twin, 5 + 0] = 0.5
    dog = anchor(32, 3, 2)  # centre (96, 64), 32 x 32: (80, 48, 112, 80)
    raw[dog, 4], raw[dog, 5 + 16] = 1.0, 0.6  # COCO 16: dog -> category animal
    faint = anchor(16, 0, 0)
    raw[faint, 4], raw[faint, 5 + 0] = 0.5, 0.5  # 0.25 < score_threshold 0.35
    car = anchor(16, 7, 7)
    raw[car, 4], raw[car, 5 + 2] = 1.0, 0.99  # COCO 2: car, in no configured category

    inst = yolox._decode(raw, 0.5, (500, 800))
    order = np.argsort(-inst.scores)
    np.testing.assert_allclose(inst.boxes[order], [[136, 20, 200, 148], [160, 96, 224, 160]], atol=1e-3)
    np.testing.assert_allclose(inst.scores[order], [0.72, 0.6], atol=1e-6)
    assert list(inst.categories[order]) == ["person", "animal"]
    clipped = yolox._decode(raw, 0.5, (100, 180))  # boxes past the frame end at its edge
    np.testing.assert_allclose(clipped.boxes[np.argsort(-clipped.scores)], [[136, 20, 180, 100], [160, 96, 180, 100]], atol=1e-3)


def test_yolox_finds_nothing_on_a_blank_frame(yolox):
    assert len(yolox.detect(np.full((288, 384, 3), 127, np.uint8))) == 0


def test_yolox_refuses_an_input_size_its_model_was_not_exported_at():
    from reid_ray.models.yolox import YoloxDetector

    with pytest.raises(ValueError, match="segmenter.input_size: 416"):
        YoloxDetector(require_shared("models/yolox_nano_coco.onnx"), SegmenterConfig().categories, input_size=640)


def test_yolov8_seg_masks_the_person_of_a_real_clip():
    """The optional AGPL backend (read from ../shared, never downloaded): one person on a CAVIAR frame, with a
    mask inside its box that covers a person-like share of it."""
    pytest.importorskip("ai_edge_litert")
    from reid_ray.models.yolov8_seg import YoloV8SegSegmenter, resolve_model_file

    path = resolve_model_file(None, require_shared("models/yolov8n-seg_int8_coco_ul8.2.44.tflite").parent)
    seg = YoloV8SegSegmenter(path, SegmenterConfig().categories)
    frame = read_rgb(require_shared(CAVIAR_REENTER), [160])[0]
    inst = seg.detect(frame)
    people = inst.select(np.flatnonzero(inst.categories == "person"))
    assert len(people) == 1 and people.masks.shape == (1, *frame.shape[:2])
    x1, y1, x2, y2 = people.boxes[0].round().astype(int)
    inside = people.masks[0][y1:y2 + 1, x1:x2 + 1].sum()
    assert inside == people.masks[0].sum()  # nothing outside the box
    assert 0.3 < inside / ((x2 - x1) * (y2 - y1)) < 0.9  # a body, not its box
    assert len(seg.detect(np.full((288, 384, 3), 127, np.uint8))) == 0


def test_yolov8_seg_is_never_downloaded(tmp_path):
    from reid_ray.models.download import DownloadError
    from reid_ray.models.yolov8_seg import resolve_model_file

    with pytest.raises(DownloadError, match="AGPL-3.0 and opt-in"):
        resolve_model_file(None, tmp_path)
    (tmp_path / "yolov8n-seg_int8_coco_ul8.2.44.tflite").write_bytes(b"not the model")
    with pytest.raises(DownloadError):  # a wrong checksum is refused too
        resolve_model_file(None, tmp_path)


def test_dlib_face_with_five_keypoints_on_a_real_photo():
    from skimage import data

    from reid_ray.models.dlib_faces import DlibFaceDetector, attach_faces_to_people

    img = data.astronaut()
    faces = DlibFaceDetector(upsample=1, min_score=0.6).detect(img)
    assert len(faces) == 1 and faces.categories[0] == "face"
    x1, y1, x2, y2 = faces.boxes[0]
    assert 150 < (x1 + x2) / 2 < 260 and 60 < (y1 + y2) / 2 < 180  # the astronaut's face
    kp = faces.keypoints[0]
    assert kp.shape == (5, 2) and ((kp[:, 0] > x1) & (kp[:, 0] < x2) & (kp[:, 1] > y1) & (kp[:, 1] < y2)).all()
    people = Instances.from_arrays([[100, 30, 400, 512], [400, 300, 500, 500]], [0.9, 0.9], ["person", "person"])
    with_kp = attach_faces_to_people(people, faces)
    assert not np.isnan(with_kp.keypoints[0]).any() and np.isnan(with_kp.keypoints[1]).all()


def test_efficientnet_patch_sets_follow_the_mask():
    from reid_ray.models.efficientnet import EfficientNetPatchEmbedder
    from reid_ray.models.heads import MeanPoolHead

    frame = read_rgb(require_shared(CAVIAR_REENTER), [120])[0]
    emb = EfficientNetPatchEmbedder(256, 128)
    box = [[200, 60, 260, 140]]
    full = Instances.from_arrays(box, [1], ["person"]).with_masks(frame.shape[:2])
    half_mask = full.masks.copy()
    half_mask[0, :, 230:] = False
    half = Instances.from_arrays(box, [1], ["person"], masks=half_mask)
    n_full, n_half = [len(emb.patch_sets(frame, x)[0]) for x in (full, half)]
    assert emb.dim == 120 and 0.3 < n_half / n_full < 0.7
    vecs = MeanPoolHead().pool(emb.patch_sets(frame, full) + emb.patch_sets(frame, half))
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert emb.patch_sets(frame, Instances.empty()) == []


def test_transnet_finds_a_spliced_cut():
    import cv2

    from reid_ray.models.transnet import TransNetShotDetector

    def small(path, n):
        return [cv2.resize(f, (48, 27), interpolation=cv2.INTER_AREA) for f in read_rgb(path, list(range(n)))]

    frames = small(require_shared(CAVIAR_REENTER), 90) + small(require_shared("video/intel/one-by-one-person-detection.mp4"), 60)
    shots = TransNetShotDetector().shots_from_frames(np.stack(frames))
    assert shots[0][0] == 0 and shots[-1][1] == 150
    assert any(abs(s - 90) <= 1 for s, _ in shots[1:]), shots


def test_each_category_is_embedded_by_its_own_network(yolox):
    """The pair profile's embedder.by_category: people by OSNet (person ReID), everything else by EfficientNet-Lite0;
    each instance's vector is what its own network and head give it alone."""
    from reid_ray.config import load_config
    from reid_ray.models import registry

    cfg = load_config("configs/local.yaml", [f"models_dir={require_shared('models').resolve()}"])
    embedders = registry.build_category_embedders(cfg)
    frame = read_rgb(require_shared(CAVIAR_REENTER), [120])[0]
    people = yolox.detect(frame)
    people = people.select(np.flatnonzero(people.categories == "person"))
    bag = Instances.from_arrays([[20, 200, 60, 250]], [0.9], ["product"])
    inst = Instances.concat([people, bag]).with_masks(frame.shape[:2], "core")
    vectors = embedders.embed(frame, inst)
    osnet, mean = embedders.for_category("person")
    effnet, _ = embedders.for_category("product")
    assert type(osnet).__name__ == "OSNetPatchEmbedder" and type(effnet).__name__ == "EfficientNetPatchEmbedder"
    assert [len(v) for v in vectors] == [osnet.dim] * len(people) + [effnet.dim] and osnet.dim != effnet.dim
    alone = mean.pool(osnet.patch_sets(frame, inst.select(np.arange(len(people)))))
    np.testing.assert_allclose(np.stack(vectors[: len(people)]), alone, atol=1e-5)
    np.testing.assert_allclose(vectors[-1], mean.pool(effnet.patch_sets(frame, inst.select([len(people)])))[0], atol=1e-5)


def test_every_segmenter_backend_says_whether_its_masks_are_real():
    """Asked of the backend's class (no model loaded): stages draw or use masks by this, never by a backend's name."""
    from typing import get_args

    from reid_ray.models import registry

    backends = set(get_args(SegmenterConfig.model_fields["backend"].annotation))
    assert backends == set(registry.SEGMENTERS) == set(registry.SEGMENTER_CLASSES)
    assert {b: registry.real_masks(b) for b in backends} == {"yolox": False, "yolov8_seg": True, "sam3": True, "bench_ground_truth": False}
    with pytest.raises(ValueError, match="not registered"):
        registry.real_masks("nope")


def test_every_backend_is_built_and_preflighted_by_name(tmp_path):
    """Embedders are looked up by name like segmenters; preflight resolves the model files of the backends that
    read one (by name too) and of nothing else."""
    from typing import get_args

    from reid_ray.config import EmbedderChoice, PairsJobConfig
    from reid_ray.models import registry

    assert set(get_args(EmbedderChoice.model_fields["backend"].annotation)) == set(registry.EMBEDDERS)
    assert set(registry.SEGMENTER_FILES) <= set(registry.SEGMENTERS) and set(registry.EMBEDDER_FILES) <= set(registry.EMBEDDERS)
    bench = PairsJobConfig.model_validate({"segmenter": {"backend": "bench_ground_truth"}, "embedder": {"backend": "bench_ground_truth"},
                                           "models_dir": str(tmp_path)})
    registry.preflight(bench)  # reads no model file: nothing to fetch
    assert type(registry.build_embedder(bench)).__name__ == "BenchGroundTruthEmbedder"
    with pytest.raises(ValueError, match="has no builder here"):
        registry.build_embedder(bench, EmbedderChoice.model_construct(backend="nope"))
