"""The OOD family: the sets (`sets.py`, family `ood_set`) and the detectors (`detectors.py`, family `detector`).

Importing the package registers both. A new detector is one class in `detectors.py`, decorated with
`@_detector("name")`, with `fit` (optional) and `score` (higher = more OOD), plus its test against a reference.
"""

from robustcollapse.ood.detectors import Detector, DetectorOptions, make_detector
from robustcollapse.ood.sets import NEAR_PAIRS, SYNTHETIC, fit_shape, is_near

__all__ = ["NEAR_PAIRS", "SYNTHETIC", "Detector", "DetectorOptions", "fit_shape", "is_near", "make_detector"]
