"""Feature extractors: image batch (already normalised) -> feature vector of size `out_dim`."""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import nn

from robustcollapse.registry import register


class Backbone(nn.Module):
    """A module with a known output width."""

    out_dim: int


class MaxPool2d(nn.MaxPool2d):
    """`nn.MaxPool2d` whose gradient-free CPU pass pools in channels-last memory: the same numbers (a max is exact,
    its window read in the same order) about 4x quicker than torch's NCHW CPU kernel on these small feature maps,
    where pooling is a third of a small network's forward pass -- most of Square's 5,000 queries and of every
    evaluation. Passes that build a graph keep torch's own kernel (its backward is not quicker this way), and an
    input already in channels-last (`eval --channels-last`) is pooled as it is and stays so."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad or x.device.type != "cpu" or x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x)
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(Backbone):
    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            *_conv_bn(in_channels, width),
            MaxPool2d(2),
            *_conv_bn(width, 2 * width),
            MaxPool2d(2),
            *_conv_bn(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_dim = 4 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register("backbone", "smallcnn")
def smallcnn(in_channels: int, image_size: int, width: Annotated[int, Field(ge=1)] = 32) -> Backbone:
    """Three conv-BN-ReLU stages (width, 2w, 4w) with pooling; for 28x28, 32x32 (and 8x8) images."""
    return SmallCNN(in_channels, width)


class ConvNet(Backbone):
    def __init__(self, in_channels: int, image_size: int, c1: int, c2: int, fc: int) -> None:
        super().__init__()
        side = image_size // 4
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1),
            nn.ReLU(inplace=True),
            MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(inplace=True),
            MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(c2 * side * side, fc),
            nn.ReLU(inplace=True),
        )
        self.out_dim = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register("backbone", "convnet")
def convnet(
    in_channels: int,
    image_size: int,
    c1: Annotated[int, Field(ge=1)] = 32,
    c2: Annotated[int, Field(ge=1)] = 64,
    fc: Annotated[int, Field(ge=1)] = 256,
) -> Backbone:
    """Two conv-ReLU-max-pool stages (c1, c2 channels) and a fully connected ReLU layer of width fc, no batch
    norm: the classic MNIST network, on which the binary head's collapse shows (see suites/mnist.yaml)."""
    return ConvNet(in_channels, image_size, c1, c2, fc)


class TorchvisionResNet(Backbone):
    def __init__(self, net: nn.Module, out_dim: int) -> None:
        super().__init__()
        self.net = net
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register("backbone", "resnet18")
def resnet18(in_channels: int, image_size: int) -> Backbone:
    """torchvision ResNet-18 in its CIFAR form: 3x3 stride-1 stem, no max-pool; 512 features."""
    import torchvision  # here, not at the top: importing it costs every run 1.5 s, and most suites never build it

    net = torchvision.models.resnet18(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return TorchvisionResNet(net, 512)


class MLP(Backbone):
    def __init__(self, in_features: int, hidden: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        self.net = nn.Sequential(*layers)
        self.out_dim = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register("backbone", "mlp")
def mlp(
    in_channels: int,
    image_size: int,
    hidden: Annotated[int, Field(ge=1)] = 256,
    depth: Annotated[int, Field(ge=1)] = 2,
) -> Backbone:
    """Flatten, then `depth` Linear-ReLU layers of width `hidden`."""
    return MLP(in_channels * image_size * image_size, hidden, depth)
