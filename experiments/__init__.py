"""One-off research scripts (``python -m experiments.NAME``); nothing in the product imports them."""
