"""Offline evaluation: paired comparisons of candidate and baseline, judged as gates."""
