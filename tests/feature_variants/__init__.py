"""Feature modules with the bugs the serving gates exist for (served from the tests folder)."""
