"""Fournil."""
