"""Runnable examples: each folder is a release of a model trained on data a package ships."""
