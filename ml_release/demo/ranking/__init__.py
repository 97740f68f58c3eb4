"""Demo of a ranking release (`examples/ranking/release.yaml`): generated search results."""
