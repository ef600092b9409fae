"""Train the GP forecasters: ``python Engine.py [--data PATH] [--output DIR] ...``; manage the kept
runs: ``python Engine.py runs list | show VERSION | promote VERSION | rollback [--output DIR]``.

Argument parsing, the run, and exit codes - nothing else: 0 on success, 2 with one readable
line for bad input, 1 with one line when the output cannot be written (or another run holds it),
3 when the new run was kept as a candidate because it scores worse than the served model.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from MLPipeline import runs
from MLPipeline.actuals import prediction_log_url
from MLPipeline.artifacts import KEEP_RUNS, OutputBusy
from MLPipeline.calendars import HOLDOUTS
from MLPipeline.config import DEFAULT_DATA_PATH, DEFAULT_OUTPUT_DIR, HOLDOUT_MONTHS, MAX_TRAIN_MONTHS
from MLPipeline.dask_executor import SchedulerError
from MLPipeline.data import LAYOUTS, DataError
from MLPipeline.frequency import FREQUENCIES
from MLPipeline.gate import GATE_MARGIN
from MLPipeline.logs import LOG_FORMATS, configure_logging
from MLPipeline.pipeline import REGRESSOR_MODES, TRAINABLE_KINDS, RunConfig, run

EXIT_CANDIDATE = 3  # trained and kept, not published: worse than the served model (see the report)


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
    parser.add_argument("--holdout", type=int, default=None, help=f"periods held out for evaluation (default: "
                        f"{HOLDOUT_MONTHS} months; {HOLDOUTS['weekly']} weeks, {HOLDOUTS['daily']} days, or a week of "
                        "hours or half-hours)")
    parser.add_argument("--max-months", type=int, default=MAX_TRAIN_MONTHS,
                        help="train each monthly series on at most its most recent N months")
    parser.add_argument("--kinds", metavar="KINDS", help=f"comma-separated kinds to train, of {', '.join(TRAINABLE_KINDS)} "
                        "(default for monthly data: the first three; seasonal-naive alone is a quick baseline for "
                        "large panels; other frequencies train statespace)")
    parser.add_argument("--no-backtest", action="store_true", help="skip the selection backtest inside each "
                        "training split (faster; --use-regressors auto then means univariate)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text")
    parser.add_argument("--jobs", type=int, default=2, help="parallel series (local processes)")
    parser.add_argument("--actuals", action="store_true", help="append the actuals recorded in the prediction "
                        "log (DATABASE_URL, else the service's SQLite log) after each series' last month")
    parser.add_argument("--force", action="store_true", help="publish the new run even when it scores worse "
                        "than the served model")
    parser.add_argument("--gate-margin", type=float, default=GATE_MARGIN, metavar="FRACTION",
                        help=f"how much worse (overall MASE, relative) a new run may be and still be published "
                             f"(default {GATE_MARGIN})")
    parser.add_argument("--keep", type=int, default=KEEP_RUNS, metavar="N", help=f"runs kept (default {KEEP_RUNS})")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=os.environ.get("DASK_SCHEDULER_ADDRESS") or None,
                        help="train on the dask.distributed cluster of this scheduler, e.g. tcp://HOST:8786 "
                             "(default: $DASK_SCHEDULER_ADDRESS; unset: --jobs local processes)")
    args = parser.parse_args(argv)
    if args.gate_margin < 0 or args.keep < 1:
        parser.error("--gate-margin must be at least 0 and --keep at least 1")
    if args.regressors in REGRESSOR_MODES:  # the flag's meaning before regressors were declared
        parser.error(f"--regressors names the regressor columns now; use --use-regressors {args.regressors}")
    return args


def parse_runs_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="Engine.py runs", description="The kept runs: list, show, promote, "
                                     "roll back (a running service follows within a second).")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("list", "the kept runs, newest first; * marks the served one"),
                       ("show", "one run: holdout figures per series, gate decision, actuals merged"),
                       ("promote", "serve this run (its files are verified first)"),
                       ("rollback", "serve the run served before the current one")):
        sub = commands.add_parser(name, help=text)
        if name in ("show", "promote"):
            sub.add_argument("version")
        sub.add_argument("--output", type=Path, default=DEFAULT_OUTPUT_DIR, help="model directory")
        sub.add_argument("--json", action="store_true", help="print JSON")
    return parser.parse_args(argv)


def runs_main(argv: list[str]) -> int:
    args = parse_runs_args(argv)
    try:
        if args.command == "list":
            rows = runs.list_runs(args.output)
            print(json.dumps(rows, indent=2) if args.json else runs.format_list(rows))
        elif args.command == "show":
            print(json.dumps(runs.show_run(args.output, args.version), indent=2))
        elif args.command == "promote":
            served = runs.promote(args.output, args.version)
            print(json.dumps(served, indent=2) if args.json else f"serving {served['version']}")
        else:
            left, served = runs.rollback(args.output)
            print(json.dumps(served, indent=2) if args.json else f"serving {served['version']} (was {left})")
    except runs.RunsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc} ({args.output}); the served model is unchanged", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["runs"]:
        return runs_main(argv[1:])
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
                        actuals_url=prediction_log_url(args.output) if args.actuals else None,
                        force=args.force, gate_margin=args.gate_margin, keep=args.keep,
                        scheduler=args.scheduler,
                        **({"kinds": tuple(_names(args.kinds))} if args.kinds else {}))
        manifest = run(cfg)
    except (DataError, SchedulerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OutputBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: could not write to {args.output}: {exc.strerror or exc}; previous models are untouched",
              file=sys.stderr)
        return 1
    if not manifest["gate"]["published"]:
        reason = manifest["gate"]["reason"].removeprefix("kept as a candidate: ")
        print(f"candidate {manifest['model_version']} not published: {reason}; "
              f"`python Engine.py runs promote {manifest['model_version']}` serves it anyway", file=sys.stderr)
        return EXIT_CANDIDATE
    logging.getLogger("Engine").info("model %s written to %s", manifest["model_version"], args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
