"""Bin fill forecasts: the one fill model that both alerts and routing read.

:mod:`forecast.fit` is pure numpy/scipy over one bin's readings (collections, weekly pattern,
rate, prediction interval); :mod:`forecast.bins` reads fill history from the store and gives
each bin's :class:`BinForecast` at a visit time.
"""

from forecast.bins import (
    DEFAULT_LOOKBACK,
    BinForecast,
    BinHistory,
    forecast_bins,
    forecast_visits,
    load_fill_history,
)
from forecast.fit import BinFit, FitSettings, fit_bin, fit_bins, forecast_fill, forecast_full_time

__all__ = [
    "DEFAULT_LOOKBACK",
    "BinFit",
    "BinForecast",
    "BinHistory",
    "FitSettings",
    "fit_bin",
    "fit_bins",
    "forecast_bins",
    "forecast_fill",
    "forecast_full_time",
    "forecast_visits",
    "load_fill_history",
]
