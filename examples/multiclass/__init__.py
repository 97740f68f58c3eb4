"""Multi-class example: handwritten digits, scikit-learn's bundled digits data."""
