"""`clip`: image and text vectors in one space, through open_clip, where it and its weights are available.

It places words next to the images they describe, which keyword search over titles cannot do. open_clip is
imported lazily and its weights come from its own hub cache, so a machine without them still gets every other
embedder, and `get_embedder("clip")` says exactly what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ogasearch.embed.base import EmbedderUnavailable, normalize, register
from ogasearch.embed.prep import pixel_art

MODEL = "ViT-B-32"
PRETRAINED = "laion2b_s34b_b79k"


class ClipEmbedder:
    """An open_clip model: `embed` for images (pixel-art input), `embed_text` for words.

    Named `clip` for the default model; any other model or weights get their own name, so their vectors are
    never mixed with the default's.
    """

    def __init__(
        self,
        model: str = MODEL,
        pretrained: str = PRETRAINED,
        cache_dir: str | None = None,
        batch_size: int = 32,
    ) -> None:
        try:
            import open_clip
            import torch
        except ImportError as exc:
            raise EmbedderUnavailable(
                f"clip needs the open_clip package and PyTorch: pip install open_clip_torch (import failed: {exc})"
            ) from exc
        try:
            network, _, preprocess = open_clip.create_model_and_transforms(
                model, pretrained=pretrained, device="cpu", cache_dir=cache_dir
            )
        except Exception as exc:  # open_clip and its hubs raise many kinds (RuntimeError, OSError, HTTP errors)
            raise EmbedderUnavailable(
                f"clip weights {model}/{pretrained} could not be loaded (open_clip downloads them on first use; "
                f"cache_dir may point to a copy): {exc}"
            ) from exc
        self._torch = torch
        self.name = "clip" if (model, pretrained) == (MODEL, PRETRAINED) else f"clip-{model}-{pretrained}"
        self.model = network.eval()
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(model)
        image_size = network.visual.image_size
        self.image_size = int(image_size if isinstance(image_size, int) else max(image_size))
        self.batch_size = batch_size
        self.dim = int(self.embed_text([""]).shape[1])

    def _encode(self, encode: Any, batch: Any) -> np.ndarray:
        with self._torch.inference_mode():
            return encode(batch).float().numpy()

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Sprites upscaled crisply to the model's input size on grey, then the model's own normalisation."""
        out = np.zeros((len(images), self.dim), np.float32)
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            batch = [self.preprocess(Image.fromarray(pixel_art(image, size=self.image_size))) for image in chunk]
            out[start : start + len(chunk)] = self._encode(self.model.encode_image, self._torch.stack(batch))
        return normalize(out)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        return normalize(self._encode(self.model.encode_text, self.tokenizer(list(texts))))


@register("clip")
def _make_clip(**options: Any) -> ClipEmbedder:
    return ClipEmbedder(**options)
