"""Canary rollouts: traffic moved to a candidate in steps, analysed at every step, with aborts."""
