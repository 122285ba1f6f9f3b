"""Forecasting: series from CSV files, training forecasters, and the demo's case study."""
