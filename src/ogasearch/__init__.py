"""Reverse image search for the pixel art on OpenGameArt.org."""

__version__ = "0.1.0"
