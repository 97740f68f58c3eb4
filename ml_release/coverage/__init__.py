"""Release-gate coverage: inject each failure mode into a scratch copy and see which gate says no.

Kept light: the serving runtime imports `ml_release.coverage.mutant` (pandas and numpy only).
"""
