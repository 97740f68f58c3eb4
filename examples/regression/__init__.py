"""Regression example: disease progression on scikit-learn's bundled diabetes data."""
