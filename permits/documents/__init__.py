"""Signed decision documents: generation, rendering, signing keys, verification."""
