"""Training: the loop (`loop.py`), what is tracked per epoch (`tracking.py`), and suite models obtained from their
recipes, trained when missing (`recipes.py`)."""
