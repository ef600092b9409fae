"""Train the call-centre GP models: ``python Engine.py [--data PATH] [--output DIR] ...``.

Argument parsing, the run, and exit codes - nothing else: 0 on success, 2 with one
readable line for bad input, 1 with one line when the output cannot be written.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from MLPipeline.config import DEFAULT_DATA_PATH, DEFAULT_OUTPUT_DIR, HOLDOUT_MONTHS
from MLPipeline.data import DataError
from MLPipeline.logs import LOG_FORMATS, configure_logging
from MLPipeline.pipeline import REGRESSOR_MODES, RunConfig, run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train the call-centre GP forecasters and save them.")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA_PATH, help="workbook (.xlsx or .csv)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT_DIR, help="model directory")
    parser.add_argument("--holdout", type=int, default=HOLDOUT_MONTHS, help="months held out for evaluation")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument("--regressors", choices=REGRESSOR_MODES, default="auto",
                        help="use phone lines and channels: per domain where the training backtest says they "
                             "help (auto), always, or never")
    parser.add_argument("--no-regressors", dest="regressors", action="store_const", const="never",
                        help="same as --regressors never")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text")
    parser.add_argument("--jobs", type=int, default=2, help="parallel model fits")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_format)
    cfg = RunConfig(data_path=args.data, output_dir=args.output, holdout=args.holdout, plots=not args.no_plots,
                    regressors=args.regressors, n_jobs=max(1, args.jobs))
    try:
        manifest = run(cfg)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: could not write to {args.output}: {exc.strerror or exc}; previous models are untouched",
              file=sys.stderr)
        return 1
    logging.getLogger("Engine").info("model %s written to %s", manifest["model_version"], args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
