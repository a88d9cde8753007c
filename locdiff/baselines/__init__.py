"""The baselines of notebook 04, each trained on the same frozen embeddings with the shared loop.

- ``classification``: cells from an adaptive quadtree, PIGEON's haversine label smoothing;
- ``retrieval``: GeoCLIP-style image and random-Fourier-feature location encoders, gallery search;
- ``regression``: an MLP to a unit vector, trained on great-circle distance;
- ``generative``: diffusion on raw coordinates and Riemannian flow matching on the sphere (PLONK),
  with LocDiff's network, conditioning, sample count and number of network evaluations;
- ``hybrid``: LocDiff-H, LocDiff's field re-ranking retrieval's candidates.
``common`` holds the shared pieces (data context, MLP, tuning on val, the sample vote).
"""
from . import classification, common, generative, hybrid, regression, retrieval
from .common import Context, Fitted, load_context

__all__ = ["classification", "common", "generative", "hybrid", "regression", "retrieval", "Context", "Fitted",
           "load_context"]
