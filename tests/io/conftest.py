"""Fixtures of tests/io; the builders themselves live in io_builders.py."""

from io_builders import velox_series

__all__ = ["velox_series"]
