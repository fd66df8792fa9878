"""Training plots logged to MLflow: error by horizon, forecast vs actual, feature importance."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from fournil.models.backtest import Backtest
from fournil.models.estimators import Forecaster

LABELS = {
    "model": "LightGBM",
    "seasonal_naive": "seasonal naive",
    "linear": "linear (fallback)",
    "expected": "noise floor",
}


def error_by_horizon(backtest: Backtest) -> Figure:
    scores = backtest.scores("horizon")
    fig, ax = plt.subplots(figsize=(7, 4))
    for method, label in LABELS.items():
        column = f"wape_{method}"
        if column in scores:
            style = "--" if method == "expected" else "-"
            ax.plot(scores.index, scores[column], style, marker="o", label=label)
    ax.set(xlabel="horizon (days)", ylabel="WAPE", title="Backtest error by horizon")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def forecast_vs_actual(backtest: Backtest, n_series: int = 4) -> Figure:
    p = backtest.predictions
    last = p[(p["fold"] == p["fold"].max()) & (p["horizon"] == 1)]
    totals = last.groupby("series")["actual"].sum().sort_values()
    picks = totals.index[np.linspace(0, len(totals) - 1, min(n_series, len(totals))).astype(int)]
    fig, axes = plt.subplots(len(picks), 1, figsize=(8, 2.2 * len(picks)), squeeze=False)
    for ax, series in zip(axes[:, 0], picks, strict=True):
        part = last[last["series"] == series].sort_values("target_date")
        ax.plot(part["target_date"], part["actual"], "k.-", label="actual")
        ax.plot(part["target_date"], part["model"], "C0-", label="forecast (h=1)")
        if "expected" in part:
            ax.plot(part["target_date"], part["expected"], "C2--", label="expected demand")
        row = part.iloc[0]
        ax.set_title(f"store {row.store_id}, product {row.product_id}", fontsize=9)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def feature_importance(model: Forecaster) -> Figure:
    booster = model.booster
    gain = booster.feature_importance("gain")
    order = np.argsort(gain)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.barh(np.array(booster.feature_name())[order], gain[order])
    ax.set(title="Feature importance (gain)", xlabel="total gain")
    fig.tight_layout()
    return fig
