"""robustcollapse: robustness, calibration and neural-collapse test suites for image classifiers."""

__version__ = "0.1.0"
