"""The gate catalog and the shape of a gate's verdict."""
