"""The suite runner and one module per test kind (each registers itself in the `test` family)."""

from robustcollapse.evaluate import attack, clean, collapse, corruption, ood, reliability  # noqa: F401  (registers the test kinds)
