"""The embedder interface and the registry of named implementations.

An embedder takes items as RGBA pixel arrays in canonical form (native pixel
scale, trimmed, alpha kept: `ingest.canonical.Canonical.pixels`) and returns one
L2-normalised float32 row per item, so inner product is cosine similarity in
every index backend. Vectors are tagged with the embedder's name in the catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from ogasearch.errors import OgasearchError


class EmbedderUnavailable(OgasearchError):
    """The embedder cannot run here (a missing optional package or weights file); the message says what to do."""

    exit_code = 2


class Embedder(Protocol):
    name: str  # registry name, stored with every vector: 'pixel', 'effnet', 'vgg16', 'clip'
    dim: int

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(n, dim) float32, each row L2-normalised; images are (H, W, 4) uint8 RGBA."""
        ...


class TextEmbedder(Protocol):
    """Embedders that also place words in the image space (CLIP)."""

    def embed_text(self, texts: Sequence[str]) -> np.ndarray: ...


_REGISTRY: dict[str, Callable[..., Embedder]] = {}


def register(name: str) -> Callable[[Callable[..., Embedder]], Callable[..., Embedder]]:
    def decorate(factory: Callable[..., Embedder]) -> Callable[..., Embedder]:
        _REGISTRY[name] = factory
        return factory

    return decorate


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get_embedder(name: str, **options: object) -> Embedder:
    """Build a named embedder; EmbedderUnavailable with a clear reason if it cannot run here."""
    _load_all()
    if name not in _REGISTRY:
        raise EmbedderUnavailable(f"unknown embedder {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**options)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _load_all() -> None:
    """Import the implementations so they register themselves (heavy imports stay inside their factories)."""
    from ogasearch.embed import clip, cnn, pixel  # noqa: F401
