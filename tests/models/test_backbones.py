"""The pooling backbones' quick gradient-free pass gives torch's own numbers, and passes that build a graph keep
torch's kernel: the reference is `torch.nn.functional.max_pool2d` on the usual NCHW layout."""

import pytest
import torch
import torch.nn.functional as F

from robustcollapse.models.backbones import MaxPool2d, convnet, smallcnn


def _tied(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """ReLU'd values on a coarse grid, so that most 2x2 windows hold ties (zeros and equal levels)."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=generator) * 2).round().relu() / 2


@pytest.mark.parametrize("shape", [(7, 32, 28, 28), (3, 64, 14, 14), (2, 1, 9, 7), (5, 16, 8, 8)])
def test_the_quick_pass_equals_torch_s_pooling_value_for_value(shape: tuple[int, ...]) -> None:
    x = _tied(shape, seed=sum(shape))
    with torch.no_grad():
        pooled = MaxPool2d(2)(x)
    reference = F.max_pool2d(x, 2)
    assert pooled.is_contiguous()
    assert torch.equal(pooled, reference)


def test_a_channels_last_input_is_pooled_as_it_is_and_stays_channels_last() -> None:
    x = _tied((4, 16, 10, 10), seed=5).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        pooled = MaxPool2d(2)(x)
    assert pooled.is_contiguous(memory_format=torch.channels_last)
    assert not pooled.is_contiguous()
    assert torch.equal(pooled, F.max_pool2d(x.contiguous(), 2))


def test_a_pass_that_builds_a_graph_gives_torch_s_gradient() -> None:
    x = _tied((4, 8, 6, 6), seed=1).requires_grad_(True)
    reference_input = x.detach().clone().requires_grad_(True)
    upstream = torch.randn(4, 8, 3, 3, generator=torch.Generator().manual_seed(2))
    MaxPool2d(2)(x).backward(upstream)
    F.max_pool2d(reference_input, 2).backward(upstream)
    assert torch.equal(x.grad, reference_input.grad)


@pytest.mark.parametrize(
    "build, shape",
    [(lambda: convnet(1, 28), (6, 1, 28, 28)), (lambda: smallcnn(3, 32, width=8), (6, 3, 32, 32))],
    ids=["convnet", "smallcnn"],
)
def test_the_backbones_give_the_same_features_with_and_without_a_graph(build, shape) -> None:
    torch.manual_seed(0)
    backbone = build().eval()
    x = torch.rand(shape, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        quick = backbone(x)
    assert all(type(m) is MaxPool2d for m in backbone.modules() if isinstance(m, torch.nn.MaxPool2d))
    assert torch.equal(quick, backbone(x.requires_grad_(True)).detach())
