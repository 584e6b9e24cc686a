"""OSNet x0.25 trained for person re-identification on MSMT17 (torchreid state dict) as a patch embedder.

A real ReID network, unlike the ImageNet backbones: it was trained to tell people apart, which is what the
long-video job's tracklet distances need. Patches are the cells of its last feature map (stride 16, 16 x 8
for a 256 x 128 crop) mapped through the network's own embedding layer (Linear + BatchNorm, folded into one
affine map per cell). That map is linear, so the mean of the cells inside a mask equals the network's own
embedding of the masked region before its final ReLU; the cells stay a set for the trained heads.

The weights file (``osnet_x0_25_msmt17.pth``, torchreid layout) is read from a path or a models directory; when
the directory lacks it, it is downloaded once from torchreid's model zoo with its checksum pinned, as YOLOX-nano
is. Its licence (torchreid MIT, MSMT17 research-only data) is the user's to accept.

The architecture below is a trimmed copy of torchreid's ``osnet.py`` (MIT, Kaiyang Zhou): only the layers
x0.25 uses, with the same module names so the published state dict loads with ``strict=True``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from reid_ray.models.patches import patch_sets
from reid_ray.records import Instances

WEIGHTS_FILE = "osnet_x0_25_msmt17.pth"
# torchreid's model zoo (KaiyangZhou/deep-person-reid, docs/MODEL_ZOO.md, "Same-domain ReID", osnet_x0_25, msmt17
# column, 61.4 (29.5)): a Google Drive file, the one BoxMOT also fetches as ``osnet_x0_25_msmt17.pt``. It is 3 MB,
# small enough that Drive serves it without the confirmation page it puts before large files.
OFFICIAL_URL = "https://drive.google.com/uc?export=download&id=1sSwXSUlj4_tHZequ_iZ8w_Jh0VaRQMqF"
# The checksum of the copy in ../shared/models (1041-identity head: MSMT17's training split, as that zoo entry). The
# URL could not be reached where this was pinned, so that its bytes match is not verified here (README, Weights).
WEIGHTS_SHA256 = "6f57607fed9f502b9efed546108132ee715df5a5b6e6932c6269bacb47f59f99"

# ------------------------------------------------------------------------- layers (torchreid, MIT)


class ConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class Conv1x1(ConvLayer):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, 1)


class Conv1x1Linear(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class LightConv3x3(nn.Module):
    """1x1 (linear) then depth-wise 3x3 (non-linear)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False, groups=cout)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv2(self.conv1(x))))


class ChannelGate(nn.Module):
    def __init__(self, c: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // reduction, 1)
        self.fc2 = nn.Conv2d(c // reduction, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))
        return x * g


class OSBlock(nn.Module):
    """Omni-scale block: four streams of 1 to 4 light 3x3 convolutions, fused by one shared channel gate."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        mid = cout // 4
        self.conv1 = Conv1x1(cin, mid)
        self.conv2a = LightConv3x3(mid, mid)
        self.conv2b = nn.Sequential(*[LightConv3x3(mid, mid) for _ in range(2)])
        self.conv2c = nn.Sequential(*[LightConv3x3(mid, mid) for _ in range(3)])
        self.conv2d = nn.Sequential(*[LightConv3x3(mid, mid) for _ in range(4)])
        self.gate = ChannelGate(mid)
        self.conv3 = Conv1x1Linear(mid, cout)
        self.downsample = Conv1x1Linear(cin, cout) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        x2 = sum(self.gate(branch(x1)) for branch in (self.conv2a, self.conv2b, self.conv2c, self.conv2d))
        identity = self.downsample(x) if self.downsample is not None else x
        return F.relu(self.conv3(x2) + identity)


class OSNet(nn.Module):
    """OSNet with torchreid's module names; ``channels`` (16, 64, 96, 128) is the x0.25 width."""

    def __init__(self, num_classes: int, channels: tuple[int, ...] = (16, 64, 96, 128), feature_dim: int = 512) -> None:
        super().__init__()
        c = channels
        self.conv1 = ConvLayer(3, c[0], 7, stride=2, padding=3)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = self._stage(c[0], c[1], reduce=True)
        self.conv3 = self._stage(c[1], c[2], reduce=True)
        self.conv4 = self._stage(c[2], c[3], reduce=False)
        self.conv5 = Conv1x1(c[3], c[3])
        self.fc = nn.Sequential(nn.Linear(c[3], feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU())
        self.classifier = nn.Linear(feature_dim, num_classes)

    @staticmethod
    def _stage(cin: int, cout: int, reduce: bool) -> nn.Sequential:
        layers: list[nn.Module] = [OSBlock(cin, cout), OSBlock(cout, cout)]
        if reduce:
            layers.append(nn.Sequential(Conv1x1(cout, cout), nn.AvgPool2d(2, stride=2)))
        return nn.Sequential(*layers)

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        return self.conv5(self.conv4(self.conv3(self.conv2(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """torchreid's eval-mode output: the 512-d embedding of the whole crop."""
        return self.fc(self.feature_maps(x).mean((2, 3)))

    def cell_projection(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The embedding layer's Linear + BatchNorm folded into one affine map (W, b), eval statistics."""
        lin, bn = self.fc[0], self.fc[1]
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return lin.weight * scale[:, None], (lin.bias - bn.running_mean) * scale + bn.bias


def resolve_weights(model: str | None, models_dir: Path, url: str | None = OFFICIAL_URL) -> Path:
    """An explicit file wins; else ``models_dir/osnet_x0_25_msmt17.pth`` with the pinned checksum, downloaded from
    ``url`` when absent (``None``: never download, a missing file is an error naming where to put it)."""
    from reid_ray.models.download import resolve_model_file

    return resolve_model_file(model, "embedder.model: OSNet weights", models_dir, WEIGHTS_FILE, url, WEIGHTS_SHA256)


def load_osnet(path: str | Path) -> OSNet:
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    model = OSNet(num_classes=state["classifier.weight"].shape[0])
    model.load_state_dict(state, strict=True)
    return model.eval()


class _FeatureMaps(nn.Module):
    def __init__(self, model: OSNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.feature_maps(x)


def fast_feature_maps(model: OSNet) -> nn.Module:
    """``model.feature_maps`` for inference: batch norms folded into their convolutions (torch.fx) and channels-last
    memory, which the CPU convolutions run faster on (measured in the README). Same outputs to float rounding; the
    plain model where the graph cannot be traced."""
    from torch.fx.experimental.optimization import fuse

    wrapped = _FeatureMaps(model).eval()
    try:
        wrapped = fuse(wrapped)
    except Exception:  # tracing is an optimisation, never a requirement
        pass
    return wrapped.to(memory_format=torch.channels_last)


class OSNetPatchEmbedder:
    """Implements ``PatchEmbedder``: 512-d cells of OSNet x0.25's stride-16 feature map."""

    dim = 512
    stride = 16

    def __init__(self, weights: str | Path, crop_height: int = 256, crop_width: int = 128, device: str = "cpu", num_threads: int | None = None) -> None:
        if num_threads:
            torch.set_num_threads(num_threads)
        self.model = load_osnet(weights).to(device)
        self.device = device
        self.fmaps = fast_feature_maps(self.model)
        self.crop_hw = (max(self.stride, crop_height // self.stride * self.stride), max(self.stride, crop_width // self.stride * self.stride))
        w, b = self.model.cell_projection()
        self.proj_w, self.proj_b = w.detach(), b.detach()

    @torch.inference_mode()
    def feature_maps(self, crops: np.ndarray) -> np.ndarray:
        """(N, 512, H/16, W/16): each cell through the folded embedding layer."""
        fmap = self.fmaps(torch.from_numpy(crops).to(self.device).contiguous(memory_format=torch.channels_last))
        cells = torch.einsum("nchw,dc->ndhw", fmap, self.proj_w) + self.proj_b[None, :, None, None]
        return cells.float().cpu().numpy()

    def patch_sets(self, frame: np.ndarray, instances: Instances) -> list[np.ndarray]:
        return patch_sets(frame, instances, self.crop_hw, self.feature_maps)
