"""dlib's HOG face detector with the 5-point landmark model (weights from ``face-recognition-models``)."""
from __future__ import annotations

import numpy as np

from reid_ray.records import Instances

FACE_CATEGORY = "face"


def _landmark_model_path() -> str:
    # The package's own __init__ imports pkg_resources, gone from recent setuptools: find the file directly.
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("face-recognition-models is not installed (pip install face-recognition-models)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_5_face_landmarks.dat"
    if not path.exists():
        raise FileNotFoundError(f"dlib 5-point landmark model missing at {path}")
    return str(path)


class DlibFaceDetector:
    """Implements ``FaceDetector``: faces with 5 keypoints (eye corners and nose base) in frame pixels."""

    def __init__(self, upsample: int = 1, min_face_px: int = 24, min_score: float = 0.0) -> None:
        import dlib

        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(_landmark_model_path())
        self.upsample = upsample
        self.min_face_px = min_face_px
        self.min_score = min_score

    def detect(self, frame: np.ndarray) -> Instances:
        # HOG scores are margins around 0..3; squashed to (0, 1) so they read like detector confidences.
        rects, scores, _ = self.detector.run(np.ascontiguousarray(frame), self.upsample, 0.0)
        boxes, kept_scores, keypoints = [], [], []
        for rect, score in zip(rects, scores):
            squashed = float(1.0 / (1.0 + np.exp(-2.0 * score)))
            if min(rect.width(), rect.height()) < self.min_face_px or squashed < self.min_score:
                continue
            shape = self.predictor(frame, rect)
            keypoints.append([[p.x, p.y] for p in shape.parts()])
            boxes.append([rect.left(), rect.top(), rect.right(), rect.bottom()])
            kept_scores.append(squashed)
        if not boxes:
            return Instances.empty()
        h, w = frame.shape[:2]
        inst = Instances.from_arrays(boxes, kept_scores, [FACE_CATEGORY] * len(boxes), keypoints=np.asarray(keypoints))
        inst.boxes[:, [0, 2]] = inst.boxes[:, [0, 2]].clip(0, w)
        inst.boxes[:, [1, 3]] = inst.boxes[:, [1, 3]].clip(0, h)
        return inst


def attach_faces_to_people(people: Instances, faces: Instances) -> Instances:
    """Give each person the keypoints of the face that lies in the top half of its box (best overlap)."""
    kps = np.full((len(people), 5, 2), np.nan, np.float32)
    if len(faces) and len(people):
        for i, (x1, y1, x2, y2) in enumerate(people.boxes):
            top = np.array([x1, y1, x2, y1 + (y2 - y1) / 2])
            fx = (faces.boxes[:, 0] + faces.boxes[:, 2]) / 2
            fy = (faces.boxes[:, 1] + faces.boxes[:, 3]) / 2
            inside = (fx >= top[0]) & (fx <= top[2]) & (fy >= top[1]) & (fy <= top[3])
            if inside.any():
                j = int(np.argmax(np.where(inside, faces.scores, -1)))
                kps[i] = faces.keypoints[j]
    return people.with_keypoints(kps)
