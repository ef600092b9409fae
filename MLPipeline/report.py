"""The readable training report (Markdown): data, holdout metrics, kind choice, normality, figures."""

from __future__ import annotations

from MLPipeline.artifacts import series_key
from MLPipeline.calendars import calendar_for

_METRICS = (("smape", "sMAPE %", 2), ("mase", "MASE", 3), ("mae", "MAE", 1), ("rmse", "RMSE", 1),
            ("mape", "MAPE %", 2), ("coverage_80", "cov 80%", 2), ("coverage_95", "cov 95%", 2), ("msis", "MSIS", 2))


def _cell(value) -> str:
    """A table cell: ids are data, so pipes and line breaks must not break the table."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value, digits: int) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def render_report(manifest: dict, normality: dict, version: str, *, plots: bool = True) -> str:
    data, window, entries = manifest["data"], manifest["train_window"], manifest["series"]
    calendar = calendar_for(manifest.get("frequency", "monthly"), window["start"])
    units = f"{calendar.unit}s"
    with_x = [e["id"] for e in entries if e["uses_regressors"]]
    out = [
        f"# Training report — model {version}",
        "",
        f"Trained at {manifest['trained_at']} on `{data['source']}` ({data['n_series']} series, {data['layout']} "
        f"layout, {manifest['frequency']}, {window['start']}..{window['end']}; data sha256 "
        f"`{data['data_sha256'][:12]}`). Each series held out its last {manifest['holdout_months']} {units} for "
        f"evaluation; the saved models are refitted on all its {units}. Regressors "
        f"({', '.join(manifest['regressors']) or 'none'}) used for: "
        f"{', '.join(with_x) if with_x else 'no series'}.",
        "",
    ]
    if data.get("skipped"):
        out += ["Left out (too short to model): "
                + "; ".join(f"**{_cell(sid)}** ({why})" for sid, why in data["skipped"].items()), ""]
    notes = [(e["id"], n) for e in entries for n in e.get("notes", ())]
    if notes:
        out += ["## Notes", ""] + [f"- **{_cell(sid)}**: {note}" for sid, note in notes] + [""]
    out += [
        "## Holdout metrics",
        "",
        f"Fitted on the training split, forecast over the held-out {units}. MASE and MSIS are scaled by the "
        f"in-sample seasonal-naive MAE (m = {calendar.season}). **Bold** marks the kind served for the series.",
        "",
    ]
    rows = []
    for e in entries:
        for kind, m in manifest["metrics"][e["id"]].items():
            name = f"**{kind}**" if e["preferred"] == kind else kind
            rows.append([e["id"], name] + [_fmt(m.get(key), digits) for key, _, digits in _METRICS])
    out += [_table(["series", "kind"] + [label for _, label, _ in _METRICS], rows), ""]

    out += ["## Why each kind was preferred", "",
            f"Chosen on a backtest inside the training split (the held-out {units} are not used).", ""]
    out += [f"- **{_cell(e['id'])}**: {manifest['selection'][e['id']]['reason']}; "
            f"{manifest['selection'][e['id']]['regressor_reason']}" for e in entries]

    out += ["", "## Normality tests", "",
            "p-values of Shapiro–Wilk (SW), D'Agostino K² (K2) and Jarque–Bera (JB); p < 0.05 rejects normality.",
            ""]
    rows = []
    for e in entries:
        for part in ("level", "difference"):
            t = normality[e["id"]][part]
            rows.append([e["id"], part] + [_fmt(t[name]["p_value"], 3) if t[name]["p_value"] is not None else
                                           t[name].get("note", "n/a") for name in ("shapiro_wilk", "dagostino_k2",
                                                                                    "jarque_bera")])
    out += [_table(["series", "part", "SW p", "K2 p", "JB p"], rows), ""]

    if plots:
        drawn = manifest.get("figures", [])
        out += ["## Figures", ""]
        if len(drawn) < len(entries):
            out += [f"Drawn for the first {len(drawn)} of {len(entries)} series.", ""]
        kinds = {e["id"]: list(manifest["metrics"][e["id"]]) for e in entries}
        for sid in drawn:
            key = series_key(sid)
            out.append(f"### {_cell(sid)}")
            out.append(f"![history](figures/history_{key}.png)")
            out.append(f"![density and QQ](figures/distribution_{key}.png)")
            out += [f"![{k} holdout](figures/holdout_{key}_{k}.png)" for k in kinds[sid]]
            out.append("")
    return "\n".join(out) + "\n"
