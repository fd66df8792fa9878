"""Forecasting models, backtests, MLflow training and the promotion gate."""
