"""Data files shipped inside the billing package (read with importlib.resources)."""
