"""Shared test setup."""
import rsnn2chip  # noqa: F401  (installs the lava compatibility fix before any test imports lava)
