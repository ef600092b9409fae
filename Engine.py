"""Train the GP forecasters: ``python Engine.py [--data PATH] [--output DIR] ...``.

Argument parsing, the run, and exit codes - nothing else: 0 on success, 2 with one readable
line for bad input, 1 with one line when the output cannot be written (or another run holds it).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from MLPipeline.artifacts import OutputBusy
from MLPipeline.config import DEFAULT_DATA_PATH, DEFAULT_OUTPUT_DIR, HOLDOUT_MONTHS, MAX_TRAIN_MONTHS
from MLPipeline.data import LAYOUTS, DataError
from MLPipeline.frequency import FREQUENCIES
from MLPipeline.logs import LOG_FORMATS, configure_logging
from MLPipeline.pipeline import REGRESSOR_MODES, TRAINABLE_KINDS, RunConfig, run


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train the GP forecasters on a data file and save them.")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_PATH, help="data file (.xlsx, .csv or .parquet)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT_DIR, help="model directory")
    parser.add_argument("--layout", choices=LAYOUTS, help="wide (a column per queue) or long (a row per queue "
                        "and month); detected from the header by default")
    parser.add_argument("--sheet", help="Excel sheet to read, by name or 1-based number (default: the first)")
    parser.add_argument("--regressors", metavar="NAMES", help="comma-separated regressor columns, e.g. "
                        "phone_lines,channels (default: the call-centre workbook's two, when present); '' for none")
    parser.add_argument("--series", metavar="NAMES", help="comma-separated series to train (default: all)")
    parser.add_argument("--freq", choices=FREQUENCIES, help="the data's frequency, checked against its timestamps "
                        "(default: detected; timestamps are read as UTC)")
    parser.add_argument("--period-column", help="header of the period column (default: month, ds, date, ...)")
    parser.add_argument("--id-column", help="long layout: header of the series-id column (default: unique_id, ...)")
    parser.add_argument("--value-column", help="long layout: header of the value column (default: y, calls, ...)")
    parser.add_argument("--use-regressors", choices=REGRESSOR_MODES, default="auto",
                        help="use the regressors per series where the training backtest says they help (auto), "
                             "always, or never")
    parser.add_argument("--no-regressors", dest="use_regressors", action="store_const", const="never",
                        help="same as --use-regressors never")
    parser.add_argument("--holdout", type=int, default=HOLDOUT_MONTHS, help="months held out for evaluation")
    parser.add_argument("--max-months", type=int, default=MAX_TRAIN_MONTHS,
                        help="train each series on at most its most recent N months")
    parser.add_argument("--kinds", metavar="KINDS", help=f"comma-separated kinds to train, of {', '.join(TRAINABLE_KINDS)} "
                        "(default: the first three; seasonal-naive alone is a quick baseline for large panels)")
    parser.add_argument("--no-backtest", action="store_true", help="skip the selection backtest inside each "
                        "training split (faster; --use-regressors auto then means univariate)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text")
    parser.add_argument("--jobs", type=int, default=2, help="parallel series")
    args = parser.parse_args(argv)
    if args.regressors in REGRESSOR_MODES:  # the flag's meaning before regressors were declared
        parser.error(f"--regressors names the regressor columns now; use --use-regressors {args.regressors}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_format)
    load = {"layout": args.layout, "sheet": args.sheet, "period_column": args.period_column,
            "id_column": args.id_column, "value_column": args.value_column,
            "frequency": args.freq,
            "regressors": None if args.regressors is None else _names(args.regressors),
            "series": None if args.series is None else _names(args.series)}
    try:
        cfg = RunConfig(data_path=args.data, output_dir=args.output, holdout=args.holdout, plots=not args.no_plots,
                        use_regressors=args.use_regressors, n_jobs=max(1, args.jobs), max_months=args.max_months,
                        load={k: v for k, v in load.items() if v is not None}, backtest=not args.no_backtest,
                        **({"kinds": tuple(_names(args.kinds))} if args.kinds else {}))
        manifest = run(cfg)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OutputBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: could not write to {args.output}: {exc.strerror or exc}; previous models are untouched",
              file=sys.stderr)
        return 1
    logging.getLogger("Engine").info("model %s written to %s", manifest["model_version"], args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
