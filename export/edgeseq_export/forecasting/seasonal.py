"""The seasonal ends of a forecaster: what a seasonal series needs, inside the step graph.

A device feeds raw rows (the target, then any covariates) and reads forecasts in the data's
units; between the two, the network sees and predicts what it learns best:

* a **delay line** ``lags`` (state, (1, batch, seasons * season)) holds the target's latest
  values, like a convolution's cache: each step shifts the new value in and the oldest out;
* the **baseline** of ``y[t + h]`` is the mean of the ``seasons`` latest values a whole number of
  seasons before it, read from the delay line: with ``seasons=1`` the seasonal-naive forecast
  ``y[t + h - season * ceil(h / season)]``; averaging several seasons tames a noisy one;
* the network's **inputs** are the current value's departure from its own baseline,
  ``(y[t] - mean_j y[t - j * season]) / scale``, the level ``(y[t] - mean) / std`` when
  ``Seasonal.level`` (a trending series drifts out of the range it was trained on: validation
  decides) and the covariates, standardised;
* its **outputs** are residuals over the baseline, in units of ``scale``: a network that
  outputs zeros is the baseline, so training starts there (the head starts at zero) and moves
  away only where the data pays.

Until ``seasons * season`` values have passed, the delay line holds zeros in place of the
values before the stream began: a stream's first forecasts are not to be used before that much
history has been fed. Over a whole sequence the same arithmetic runs at once, on constant
slices of the history, so the exported step graph takes any number of steps.
"""

from __future__ import annotations

import torch
from torch import nn

from ..pytorch.architecture import Seasonal


class SeasonalEnds(nn.Module):
    """The input features and the forecast arithmetic around the recurrent network of a
    ``Seasonal`` architecture; its buffers (scale, mean, std, covariate mean and std) travel in
    the state_dict."""

    def __init__(self, spec: Seasonal):
        super().__init__()
        self.spec = spec
        self.register_buffer("scale", torch.ones(1))
        self.register_buffer("level_mean", torch.zeros(1))
        self.register_buffer("level_std", torch.ones(1))
        self.register_buffer("covariate_mean", torch.zeros(spec.inputs - 1))
        self.register_buffer("covariate_std", torch.ones(spec.inputs - 1))

    def features(self, x: torch.Tensor, lags: torch.Tensor):
        """``x`` (batch, time, inputs) raw rows and ``lags`` (1, batch, seasons * season) -> the
        network's inputs (batch, time, features), the baselines (batch, time, horizon) and the
        next ``lags``."""
        season, seasons = self.spec.season, self.spec.seasons
        span = season * seasons
        target = x[..., 0]
        history = torch.cat([lags[0], target], dim=1)  # (batch, span + time): history[:, span + t] = y[t]
        own_baseline = _mean(history, [(span - j * season, j * season) for j in range(1, seasons + 1)])
        parts = [((target - own_baseline) / self.scale).unsqueeze(-1)]
        if self.spec.level:
            parts.append(((target - self.level_mean) / self.level_std).unsqueeze(-1))
        if self.spec.inputs > 1:
            parts.append((x[..., 1:] - self.covariate_mean) / self.covariate_std)
        baselines = [_mean(history, [(span + 1 + k - j * season, j * season - 1 - k) for j in range(1, seasons + 1)])
                     for k in (h % season for h in range(self.spec.horizon))]
        return torch.cat(parts, dim=-1), torch.stack(baselines, dim=-1), history[:, -span:].unsqueeze(0)

    def empty_lags(self, x: torch.Tensor) -> torch.Tensor:
        """The delay line a stream starts from: zeros, (1, batch, seasons * season)."""
        return x.new_zeros(1, x.shape[0], self.spec.seasons * self.spec.season)

    def forecast(self, residuals: torch.Tensor, baselines: torch.Tensor) -> torch.Tensor:
        """The network's residuals (in units of ``scale``) over the baselines, in the data's units."""
        return baselines + residuals * self.scale

    def set_scales(self, scale: float, level_mean: float, level_std: float, covariate_mean, covariate_std) -> None:
        """The training span's spread of departures from the baseline, the target's mean and std,
        and the covariates' means and stds (all positive where they divide)."""
        values = dict(scale=[scale], level_mean=[level_mean], level_std=[level_std],
                      covariate_mean=covariate_mean, covariate_std=covariate_std)
        for name, value in values.items():
            buffer = getattr(self, name)
            buffer.copy_(torch.as_tensor(value, dtype=torch.float32).reshape(buffer.shape))


    def normalisation(self) -> dict[str, list[float]]:
        """The rows' means and spreads (the target's level, then the covariates) and the
        forecasts' (the level, and ``scale`` as the unit of their residuals): recorded in the
        exported model's metadata, and the units in which ``verify`` draws inputs and judges
        outputs."""
        level, horizon = self.level_mean.tolist(), self.spec.horizon
        return {"input_mean": level + self.covariate_mean.tolist(),
                "input_std": self.level_std.tolist() + self.covariate_std.tolist(),
                "output_mean": level * horizon, "output_std": self.scale.tolist() * horizon}


def _mean(history: torch.Tensor, bounds: list[tuple[int, int]]) -> torch.Tensor:
    """The mean of ``history[:, start:len - from_end]`` over ``(start, from_end)`` bounds that do
    not depend on the length (so one graph steps any number of steps)."""
    slices = [history[:, start:-from_end] if from_end else history[:, start:] for start, from_end in bounds]
    return slices[0] if len(slices) == 1 else torch.stack(slices).mean(dim=0)
