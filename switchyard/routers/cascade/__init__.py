"""Cascade routers: try a cheap model first, escalate to a stronger one when a learned
classifier expects the cheap one to fail (before generation) or a verifier doubts its answer
(after). ``model`` serves (NumPy only); ``training`` fits one on model outputs (train extra)."""

from switchyard.routers.cascade.model import (
    CASCADE_FILE,
    CascadeFormatError,
    CascadeModel,
    read_cascade_manifest,
    verifier_features,
)

__all__ = [
    "CASCADE_FILE",
    "CascadeFormatError",
    "CascadeModel",
    "read_cascade_manifest",
    "verifier_features",
]
