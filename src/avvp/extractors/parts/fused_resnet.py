"""ResNet-152 inference on CPU as oneDNN convolutions with everything else fused into them.

In eager mode about 40 % of a channels-last ResNet-152 forward on a 2-core CPU goes to passes that
only read and write memory: batch norm, ReLU and the residual addition. Here each batch norm is
folded into its convolution's weights and bias, and the ReLU, or the residual addition and its
ReLU, run inside the convolution (`torch.ops.mkldnn._convolution_pointwise`, the fused kernels
PyTorch's own compiler uses on CPU), so a bottleneck block is three or four convolution calls. Same
features to about 1e-6 relative (float rounding of the folded weights).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision
from torch import Tensor, nn


@dataclass(frozen=True)
class FoldedConv:
    """A convolution with its batch norm folded in (weights channels-last, as oneDNN keeps them)."""

    weight: Tensor
    bias: Tensor
    padding: list[int]
    stride: list[int]
    dilation: list[int]
    groups: int

    @classmethod
    def fold(cls, conv: nn.Conv2d, norm: nn.BatchNorm2d) -> FoldedConv:
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        weight = (conv.weight * scale.reshape(-1, 1, 1, 1)).contiguous(memory_format=torch.channels_last)
        bias = norm.bias - norm.running_mean * scale
        return cls(weight.detach(), bias.detach(), list(conv.padding), list(conv.stride), list(conv.dilation),
                   conv.groups)

    def __call__(self, x: Tensor, relu: bool = True) -> Tensor:
        return torch.ops.mkldnn._convolution_pointwise(x, self.weight, self.bias, self.padding, self.stride,
                                                      self.dilation, self.groups, "relu" if relu else "none",
                                                      [], "")

    def add_relu(self, x: Tensor, residual: Tensor) -> Tensor:
        """relu(conv(x) + residual) in one kernel."""
        return torch.ops.mkldnn._convolution_pointwise.binary(x, residual, self.weight, self.bias, self.padding,
                                                             self.stride, self.dilation, self.groups, "add",
                                                             None, "relu", [], None)


@dataclass(frozen=True)
class FoldedBottleneck:
    conv1: FoldedConv
    conv2: FoldedConv
    conv3: FoldedConv
    downsample: FoldedConv | None

    def __call__(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x, relu=False)
        return self.conv3.add_relu(self.conv2(self.conv1(x)), residual)


class FusedResNet(nn.Module):
    """Features (global-pool output) of a torchvision bottleneck ResNet in eval mode, CPU only."""

    def __init__(self, model: torchvision.models.ResNet) -> None:
        super().__init__()
        self.stem = FoldedConv.fold(model.conv1, model.bn1)
        self.maxpool = model.maxpool
        self.blocks = [
            FoldedBottleneck(FoldedConv.fold(b.conv1, b.bn1), FoldedConv.fold(b.conv2, b.bn2),
                             FoldedConv.fold(b.conv3, b.bn3),
                             None if b.downsample is None else FoldedConv.fold(b.downsample[0], b.downsample[1]))
            for layer in (model.layer1, model.layer2, model.layer3, model.layer4) for b in layer
        ]

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.stem(x.contiguous(memory_format=torch.channels_last)))
        for block in self.blocks:
            x = block(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


def can_fuse(model: nn.Module, device: torch.device) -> bool:
    """Whether `model` is a bottleneck ResNet that can run fused on `device` (CPU with oneDNN)."""
    return (device.type == "cpu" and torch.backends.mkldnn.is_available()
            and isinstance(model, torchvision.models.ResNet)
            and isinstance(model.layer1[0], torchvision.models.resnet.Bottleneck))
