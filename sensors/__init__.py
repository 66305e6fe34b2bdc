"""Baton's sensors. Each module returns its own Definitions; ``definitions`` merges them."""
