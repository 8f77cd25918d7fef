"""Data sources: embedded sets (no download) and on-disk torchvision sets, as in-memory uint8 tensors."""

from robustcollapse.data import embedded, ondisk  # noqa: F401  (registers the sources)
from robustcollapse.data.base import Dataset, Split, coarsen, hold_out, load_dataset, to_float, validation_split

__all__ = ["Dataset", "Split", "coarsen", "hold_out", "load_dataset", "to_float", "validation_split"]
