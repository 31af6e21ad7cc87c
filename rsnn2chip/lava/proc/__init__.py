"""Lava Process definitions only: Lava's model discovery executes every module in this folder."""
