"""locdiff: image geolocalization by latent diffusion in spherical-harmonic (SHDD) space."""
from . import geo, profiles, shdd

__version__ = "0.1.0"
__all__ = ["geo", "profiles", "shdd", "__version__"]
