"""Forecasts drawn against the actual series: what ``edgeseq evaluate --plot`` and the demo write.

The x axis carries the CSV's dates when its label column holds them (else the step number), the
y axis the forecast column's name as the unit (``unit`` says more, e.g. "bottles"), and the
seasonal-naive baseline is drawn beside the models, dashed.
"""

from __future__ import annotations

import numpy as np

from .scores import rmse, seasonal_naive_forecasts
from .series import Series


def plot_forecasts(path: str, series: Series, start: int, lines: dict[str, np.ndarray], season: int, title: str,
                   unit: str | None = None) -> bool:
    """Write a PNG of ``series.values[start:]``, each of ``lines`` (label -> forecasts of
    ``values[start:]``) and the seasonal-naive forecasts; False when matplotlib is absent."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    actual = series.values[start:]
    x = series.dates[start:] if series.dates is not None else np.arange(start, len(series.values))
    naive = seasonal_naive_forecasts(series.values, start, len(series.values), season)
    figure, axes = plt.subplots(figsize=(10, 4))
    axes.plot(x, actual, color="black", lw=2, label="actual")
    axes.plot(x, naive, color="grey", lw=1, ls="--",
              label=f"seasonal naive, season {season} (RMSE {rmse(naive, actual):.4g})")
    for label, forecasts in lines.items():
        axes.plot(x, forecasts, lw=1, label=label)
    axes.set_title(title)
    axes.set_xlabel(series.label_name if series.dates is not None and series.label_name else "step")
    axes.set_ylabel(f"{series.name} ({unit})" if unit else series.name)
    axes.legend(fontsize="small")
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
