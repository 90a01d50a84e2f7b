"""Embedders: named models that turn item pixels into unit vectors."""
