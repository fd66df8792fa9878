"""Fournil: demand forecasting for a bakery chain, from drops to forecasts."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fournil")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
