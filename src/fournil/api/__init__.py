"""The HTTP service: batch forecasts, online predictions, model info, metrics."""
