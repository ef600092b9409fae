"""Champion/challenger: publish a new run only if it is not worse than the model being served.

Both models are scored on the same months: the challenger's held-out months (its last
``--holdout`` months, forecast by models that did not see them), restricted to those the serving
model also forecast without seeing them - its own held-out months (``holdout.json``) and every
month after the last month it was trained on (forecast now by its served models). Each series is
scored with its preferred kind in each run.

The metric is MASE (the forecast MAE over the in-sample seasonal-naive MAE of the series' months
before the window: one scale for both models, so the figures compare like with like), per series
and as the mean over the series both can score. The challenger is published when its overall
MASE is at most the champion's times ``1 + margin`` (``GATE_MARGIN`` by default); the series worse
by more than the margin are listed either way. When no month can be scored by both (no model
served yet, one that cannot be loaded, or no overlap) there is nothing to compare and the run is
published; the report says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from MLPipeline.evaluation import mae, seasonal_naive_scale
from MLPipeline.panel import Panel

GATE_METRIC = "mase"
#: How much worse (relative, overall) a new run may score than the served one and still be published.
GATE_MARGIN = 0.05


def _champion_means(champion, sid: str, months: np.ndarray, panel: Panel) -> dict[int, float]:
    """Month -> the serving model's out-of-sample forecast, for the months of ``months`` it has one."""
    info = champion.series.get(sid)
    if info is None:
        return {}
    found = {}
    calendar = panel.calendar
    held = champion.holdout.get((sid, info.preferred))
    if held is not None:
        found.update(zip(calendar.index_ordinals(held.index).tolist(), held["mean"].to_numpy().tolist(), strict=True))
    after = months[months > info.last]
    model = champion.models.get((sid, info.preferred))
    if len(after) and model is not None:
        X = None
        if getattr(model, "regressors_", None):
            s = panel[sid]
            if s.x is None or tuple(model.regressors_) != tuple(panel.regressors):
                return {m: v for m, v in found.items() if m in set(months.tolist())}
            X = pd.DataFrame(s.x[after - s.start], index=calendar.index(after), columns=list(panel.regressors))
        forecast = model.predict_at(calendar.index(after), X, level=(95,))
        found.update(zip(after.tolist(), forecast["mean"].to_numpy().tolist(), strict=True))
    wanted = set(months.tolist())
    return {m: v for m, v in found.items() if m in wanted}


def compare(panel: Panel, challenger: dict[str, pd.DataFrame], champion, margin: float = GATE_MARGIN,
            champion_problem: str | None = None) -> dict:
    """The gate's decision and figures.

    ``challenger``: series id -> its preferred kind's holdout frame (month index; ``mean``, ``actual``);
    ``champion``: the serving run's ModelBundle, or None (``champion_problem`` says why).
    """
    decision = {"metric": GATE_METRIC, "margin": margin, "champion": None, "series": {}, "skipped": {}}
    if champion is None:
        reason = champion_problem or "no model is being served"
        return {**decision, "published": True, "reason": f"not gated: {reason}"}
    decision["champion"] = champion.version
    calendar = panel.calendar
    if champion.calendar != calendar:
        return {**decision, "published": True, "reason": f"not gated: the served model is "
                f"{champion.calendar.describe()}, this run {calendar.describe()}"}
    for sid, frame in challenger.items():
        months = calendar.index_ordinals(frame.index)
        theirs = _champion_means(champion, sid, months, panel)
        keep = np.array([m in theirs for m in months.tolist()], dtype=bool)
        if not keep.any():
            decision["skipped"][sid] = "the serving model has no out-of-sample forecast of these months"
            continue
        s = panel[sid]
        scale = seasonal_naive_scale(s.y[:int(months.min()) - s.start], m=calendar.season)
        if not np.isfinite(scale):
            decision["skipped"][sid] = "seasonal-naive scale is zero (a constant series)"
            continue
        actual = frame["actual"].to_numpy()[keep]
        scored = months[keep]
        decision["series"][sid] = {
            "months": [calendar.label(int(scored.min())), calendar.label(int(scored.max()))],
            "n_months": int(keep.sum()),
            "challenger": mae(actual, frame["mean"].to_numpy()[keep]) / scale,
            "champion": mae(actual, np.array([theirs[m] for m in scored.tolist()])) / scale,
        }
    scores = decision["series"]
    if not scores:
        return {**decision, "published": True, "reason": "not gated: no month can be scored by both models"}
    new = float(np.mean([v["challenger"] for v in scores.values()]))
    old = float(np.mean([v["champion"] for v in scores.values()]))
    worse = [sid for sid, v in scores.items() if v["challenger"] > v["champion"] * (1 + margin)]
    published = new <= old * (1 + margin)
    verdict = ("published" if published else "kept as a candidate") + (
        f": overall MASE {new:.3f} vs {old:.3f} served ({champion.version}) over {len(scores)} series; "
        f"{'within' if published else 'worse than'} the {margin:.0%} margin")
    return {**decision, "published": published, "overall": {"challenger": new, "champion": old},
            "worse_series": worse, "reason": verdict}


def report_section(decision: dict) -> str:
    """The report's Markdown section on the gate."""
    lines = ["", "## Champion/challenger gate", "", decision["reason"] + ".", ""]
    if decision["series"]:
        lines += ["| series | months | MASE (this run) | MASE (served) |", "|---|---|---|---|"]
        for sid, v in decision["series"].items():
            lines.append(f"| {sid} | {v['months'][0]}..{v['months'][1]} ({v['n_months']}) "
                         f"| {v['challenger']:.3f} | {v['champion']:.3f} |")
        lines.append(f"| overall (mean) | | {decision['overall']['challenger']:.3f} | "
                     f"{decision['overall']['champion']:.3f} |")
        if decision["worse_series"]:
            lines += ["", f"Worse by more than {decision['margin']:.0%}: {', '.join(decision['worse_series'])}."]
    for sid, why in decision["skipped"].items():
        lines.append(f"- {sid}: not compared ({why})")
    return "\n".join(lines) + "\n"
