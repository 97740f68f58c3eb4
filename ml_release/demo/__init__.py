"""The demo: a credit-default problem generated from a seed, its feature code and scenarios."""
