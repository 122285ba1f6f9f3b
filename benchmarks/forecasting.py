"""Forecasters against the seasonal-naive baseline on five public series, as the product makes them.

For each series and each cell (RNN, LSTM, GRU) this runs what ``edgeseq demo`` runs
(``edgeseq_export.forecasting.demo.run_study``): ``train`` with its default design choice,
``export`` (checked against PyTorch and ONNX Runtime), ``quantize`` to int8, and both files
streamed by edgeseq's runtime over the whole series. It prints one markdown table: test RMSE and
MASE of the fp32 and int8 streams, the design validation chose, the training time, and the
seasonal-naive baseline; the seed document's case study (RMSE RNN 15.3, LSTM 9.8, GRU 10.1 on
sales data it does not name) is printed beside it for reference.

    python benchmarks/forecasting.py [--epochs N] [--only wineind,taylor] [--out DIR]

Training times are wall-clock on one thread; on a shared machine they are upper bounds.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from edgeseq_export.forecasting.demo import run_study
from edgeseq_export.forecasting.series import read_series

DATA = Path(__file__).resolve().parents[1] / "edgeseq" / "data"
# name -> (file, read_series options, train options): the seasons of the statsmodels series are
# their calendars' (detection finds El Niño's multi-year cycle of 48 months first)
SERIES = {
    "wineind": ("wineind.csv", {}, {}),
    "taylor": ("taylor.csv", {}, {}),
    "elnino": ("elnino.csv", {}, {"season": 12}),
    "co2": ("co2.csv", {"missing": "interpolate"}, {"season": 52}),
    "macrodata": ("macrodata.csv", {"column": "realcons", "covariates": ["realdpi", "tbilrate"]}, {"season": 4}),
}
SEED_RMSE = {"RNN": 15.3, "LSTM": 9.8, "GRU": 10.1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=80)
    parser.add_argument("--only", help="comma-separated series names")
    parser.add_argument("--out", help="where to keep the models (default: a temporary folder)")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(SERIES)
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(args.out or scratch)
        print("| series | model | design | test RMSE | MASE | int8 RMSE | int8 vs fp32 | train s | seed RMSE |")
        print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name in names:
            file, read_options, train_options = SERIES[name]
            series = read_series(DATA / file, **read_options)
            rows = run_study(series, str(out / name), args.epochs, calls=200, **train_options)
            for row in rows:
                seed = SEED_RMSE.get(row.model, "")
                if row.int8_rmse is None:
                    print(f"| {name} | {row.model} | | {row.test_rmse:.4g} | {row.test_mase:.3f} | | | | |")
                    continue
                gap = (row.int8_rmse - row.test_rmse) / row.test_rmse
                print(f"| {name} | {row.model} | {row.design} | {row.test_rmse:.4g} | {row.test_mase:.3f} | "
                      f"{row.int8_rmse:.4g} | {gap:+.2%} | {row.train_seconds:.1f} | {seed} |", flush=True)


if __name__ == "__main__":
    main()
