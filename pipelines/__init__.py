"""Workflows that need both training and curation (the retraining loop); nothing below imports them."""
