"""The embedded benchmark BlueMarble-Geo: GeoNames places, Blue Marble tiles, seeded splits, caches."""
from .bluemarble import SPLITS, Split, build, heldout_cells, load, load_split, summary
from .cells import CellGrid
from .places import CONTINENTS, find_place, load_places
from .tiles import TileRenderer, blue_marble

__all__ = ["SPLITS", "Split", "build", "load", "load_split", "summary", "heldout_cells", "CellGrid",
           "CONTINENTS", "find_place", "load_places", "TileRenderer", "blue_marble"]
