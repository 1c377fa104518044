"""Shipped defaults, read with importlib.resources."""
