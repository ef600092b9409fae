"""The readable training report (Markdown): data, normality, holdout metrics, kind choice, figures."""

from __future__ import annotations

from MLPipeline.config import DOMAINS, KINDS

_METRICS = (("smape", "sMAPE %", 2), ("mase", "MASE", 3), ("mae", "MAE", 1), ("rmse", "RMSE", 1),
            ("mape", "MAPE %", 2), ("coverage_80", "cov 80%", 2), ("coverage_95", "cov 95%", 2), ("msis", "MSIS", 2))


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value, digits: int) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def render_report(manifest: dict, normality: dict, version: str, *, plots: bool = True) -> str:
    data, window, holdout = manifest["data"], manifest["train_window"], manifest["holdout"]
    out = [
        f"# Training report — model {version}",
        "",
        f"Trained at {manifest['trained_at']} on `{data['source']}` ({data['n_months']} months, "
        f"{window['start']}..{window['end']}; data sha256 `{data['data_sha256'][:12]}`). "
        f"Held out the last {holdout['months']} months ({holdout['start']}..{holdout['end']}) for evaluation; "
        "the saved models are refitted on all months. Regressors ("
        f"{', '.join(manifest['regressors'])}) used for: "
        f"{', '.join(d for d in DOMAINS if manifest['uses_regressors'][d]) or 'no domain'}.",
        "",
        "## Holdout metrics",
        "",
        "Fitted on the training split, forecast over the held-out months. MASE and MSIS are scaled by the "
        "in-sample seasonal-naive MAE (m = 12). **Bold** marks the kind served for the domain.",
        "",
    ]
    rows = []
    for d in DOMAINS:
        for k in KINDS:
            m = manifest["metrics"][d][k]
            name = f"**{k}**" if manifest["preferred"][d] == k else k
            rows.append([d, name] + [_fmt(m.get(key), digits) for key, _, digits in _METRICS])
    out += [_table(["domain", "kind"] + [label for _, label, _ in _METRICS], rows), ""]

    out += ["## Why each kind was preferred", "",
            "Chosen on a backtest inside the training split (the held-out months are not used).", ""]
    out += [f"- **{d}**: {manifest['selection'][d]['reason']}; {manifest['selection'][d]['regressor_reason']}"
            for d in DOMAINS]

    out += ["", "## Normality tests", "",
            "p-values of Shapiro–Wilk (SW), D'Agostino K² (K2) and Jarque–Bera (JB); p < 0.05 rejects normality.",
            ""]
    rows = []
    for d in DOMAINS:
        for series in ("level", "difference"):
            t = normality[d][series]
            rows.append([d, series] + [f"{t[name]['p_value']:.3g}" for name in ("shapiro_wilk", "dagostino_k2",
                                                                               "jarque_bera")])
    out += [_table(["domain", "series", "SW p", "K2 p", "JB p"], rows), ""]

    if plots:
        out += ["## Figures", ""]
        for d in DOMAINS:
            out.append(f"### {d}")
            out.append(f"![{d} history](figures/history_{d}.png)")
            out.append(f"![{d} density and QQ](figures/distribution_{d}.png)")
            out += [f"![{d} {k} holdout](figures/holdout_{d}_{k}.png)" for k in KINDS]
            out.append("")
    return "\n".join(out) + "\n"
