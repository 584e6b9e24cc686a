"""DINOv2 / DINOv3 ViT as a ``PatchEmbedder``: per instance, the backbone's patch tokens that lie inside its mask.

Each instance's box (plus a little context, clamped to the frame) is cut out, resized to the crop size rounded to
multiples of the patch size, normalised and run through the ViT, all instances of a frame in one batch. The patch
tokens (CLS and register tokens skipped) form a grid; the instance mask, cut the same way and area-averaged onto that
grid, picks the patches it covers at least half of (always at least the best-covered one).
"""
from __future__ import annotations

import numpy as np

from reid_ray.models.patches import IMAGENET_MEAN, IMAGENET_STD, covered_cells
from reid_ray.records import Instances, clip_boxes


def _round_to_multiple(value: int, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def context_box(box: np.ndarray, frame_shape: tuple[int, int], context: float) -> tuple[int, int, int, int]:
    """Integer crop window: the box grown by ``context`` of its size on each side, clamped to the frame, >= 1 px."""
    h, w = frame_shape
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    cx1 = int(np.floor(max(0.0, x1 - context * bw)))
    cy1 = int(np.floor(max(0.0, y1 - context * bh)))
    cx2 = int(np.ceil(min(float(w), x2 + context * bw)))
    cy2 = int(np.ceil(min(float(h), y2 + context * bh)))
    cx1, cy1 = min(cx1, w - 1), min(cy1, h - 1)
    return cx1, cy1, max(cx2, cx1 + 1), max(cy2, cy1 + 1)


def coverage_grid(mask_crop: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Share of each grid cell the (cropped) mask covers, by area averaging: (gh, gw) float32 in [0, 1]."""
    import cv2

    gh, gw = grid
    m = mask_crop.astype(np.float32)
    h, w = m.shape
    if h >= gh and w >= gw:
        return cv2.resize(m, (gw, gh), interpolation=cv2.INTER_AREA)
    # smaller than the grid: upsample to a multiple of it first, then average blocks exactly
    up = cv2.resize(m, (gw * max(1, -(-w // gw)), gh * max(1, -(-h // gh))), interpolation=cv2.INTER_NEAREST)
    return up.reshape(gh, up.shape[0] // gh, gw, up.shape[1] // gw).mean(axis=(1, 3))


class DinoPatchEmbedder:
    """Patch-token sets from a DINOv2 (``Dinov2Model``) or DINOv3 ViT (``DINOv3ViTModel``) checkpoint."""

    def __init__(
        self,
        model: str,
        crop_height: int = 224,
        crop_width: int = 112,
        device: str = "cpu",
        context: float = 0.05,
        min_coverage: float = 0.5,
        batch_size: int = 64,
    ) -> None:
        import torch
        from transformers import AutoConfig, AutoModel

        self.model_name = model
        self.device = torch.device(device)
        config = AutoConfig.from_pretrained(model)
        patch = config.patch_size
        self.patch_size = int(patch[0] if isinstance(patch, (list, tuple)) else patch)
        # CLS first, then any register tokens, then the patch grid row by row
        self.num_prefix_tokens = 1 + int(getattr(config, "num_register_tokens", 0) or 0)
        self.dim = int(config.hidden_size)
        self.crop_height = _round_to_multiple(crop_height, self.patch_size)
        self.crop_width = _round_to_multiple(crop_width, self.patch_size)
        self.grid = (self.crop_height // self.patch_size, self.crop_width // self.patch_size)
        self.context = float(context)
        self.min_coverage = float(min_coverage)
        self.batch_size = int(batch_size)

        mean, std = IMAGENET_MEAN, IMAGENET_STD
        try:
            from transformers import AutoImageProcessor

            proc = AutoImageProcessor.from_pretrained(model)
            mean = tuple(getattr(proc, "image_mean", None) or mean)
            std = tuple(getattr(proc, "image_std", None) or std)
        except Exception:  # noqa: BLE001 - no processor saved with the checkpoint: ImageNet statistics
            pass
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.model = AutoModel.from_pretrained(model).to(self.device).eval()

    def _crops(self, frame: np.ndarray, instances: Instances) -> tuple[np.ndarray, list[np.ndarray]]:
        import cv2

        h, w = frame.shape[:2]
        boxes = clip_boxes(instances.boxes, (h, w))
        crops = np.empty((len(instances), self.crop_height, self.crop_width, 3), np.uint8)
        coverages = []
        for i, box in enumerate(boxes):
            cx1, cy1, cx2, cy2 = context_box(box, (h, w), self.context)
            crops[i] = cv2.resize(
                np.ascontiguousarray(frame[cy1:cy2, cx1:cx2]), (self.crop_width, self.crop_height),
                interpolation=cv2.INTER_LINEAR,
            )
            if instances.masks is not None:
                mask_crop = instances.masks[i, cy1:cy2, cx1:cx2]
            else:
                mask_crop = np.zeros((cy2 - cy1, cx2 - cx1), bool)
                bx1, by1, bx2, by2 = np.round(box).astype(int)
                mask_crop[max(by1 - cy1, 0) : max(by2 - cy1, 0), max(bx1 - cx1, 0) : max(bx2 - cx1, 0)] = True
            coverages.append(coverage_grid(mask_crop, self.grid))
        return crops, coverages

    def _embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 crops -> (N, gh, gw, dim) float32 patch tokens."""
        import torch

        gh, gw = self.grid
        outs = []
        with torch.inference_mode():
            for start in range(0, len(crops), self.batch_size):
                x = torch.from_numpy(crops[start : start + self.batch_size]).to(self.device)
                x = x.permute(0, 3, 1, 2).float().div_(255.0)
                x = (x - self.mean) / self.std
                x = x.to(next(self.model.parameters()).dtype)
                tokens = self.model(pixel_values=x).last_hidden_state[:, self.num_prefix_tokens :]
                if tokens.shape[1] != gh * gw:
                    raise RuntimeError(
                        f"{self.model_name}: {tokens.shape[1]} patch tokens after {self.num_prefix_tokens} prefix "
                        f"tokens, expected a {gh}x{gw} grid"
                    )
                outs.append(tokens.float().reshape(len(x), gh, gw, -1).cpu().numpy())
        return np.concatenate(outs).astype(np.float32, copy=False)

    @property
    def crop_hw(self) -> tuple[int, int]:
        return self.crop_height, self.crop_width

    def feature_maps(self, crops: np.ndarray) -> np.ndarray:
        """(N, dim, gh, gw) patch tokens of crops made by ``reid_ray.models.patches.instance_crops`` ((N, 3, H, W),
        ImageNet-normalised): the layout the OSNet and EfficientNet embedders give, so the patch pictures
        (``reid_ray.viz.patch_maps``) draw DINO's patches too."""
        rgb = crops * np.asarray(IMAGENET_STD, np.float32)[:, None, None] + np.asarray(IMAGENET_MEAN, np.float32)[:, None, None]
        u8 = (rgb.clip(0, 1) * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)
        return self._embed(np.ascontiguousarray(u8)).transpose(0, 3, 1, 2)

    def patch_sets(self, frame: np.ndarray, instances: Instances) -> list[np.ndarray]:
        if len(instances) == 0:
            return []
        frame = np.asarray(frame, np.uint8)
        crops, coverages = self._crops(frame, instances)
        grids = self._embed(crops)
        return [np.ascontiguousarray(tokens[covered_cells(cov, self.min_coverage)], dtype=np.float32)
                for tokens, cov in zip(grids, coverages)]
