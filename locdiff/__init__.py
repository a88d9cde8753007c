"""locdiff: image geolocalization by latent diffusion in spherical-harmonic (SHDD) space."""
from . import geo, profiles, shdd

__version__ = "0.1.0"
__all__ = ["geo", "profiles", "shdd", "LocDiffPipeline", "__version__"]


def __getattr__(name):
    """``locdiff.LocDiffPipeline`` without importing the pipeline's dependencies at ``import locdiff``."""
    if name == "LocDiffPipeline":
        from .pipeline import LocDiffPipeline

        return LocDiffPipeline
    raise AttributeError(f"module 'locdiff' has no attribute {name!r}")
