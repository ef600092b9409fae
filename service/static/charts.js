// Interactive forecast charts. Each figure.chart-card[data-chart-url] fetches its series' JSON
// (GET /dashboard/chart?series=...) and draws it with uPlot (static/vendor/uplot): the hovered
// month's values in a readout line under the plot, drag across months to zoom, double-click or
// "All months" to zoom out, arrow keys to step through months. The server-drawn SVG stays in the
// page for readers without JavaScript and is hidden only once the chart is drawn, so a failed fetch
// leaves the static chart. Everything is built with DOM calls and CSS classes: the page's
// Content-Security-Policy allows no inline script or style attribute.
"use strict";

(function () {
  if (typeof uPlot === "undefined") {
    return; // the library did not load: the SVG charts stay
  }
  const HEIGHT = 320;
  const calls = (value) => Math.round(value).toLocaleString("en-US");
  // "2021-03" (a month) or "2021-03-28T02:00:00Z" (a period of another frequency), UTC.
  const toSeconds = (month) => (month.length > 7 ? Date.parse(month)
    : Date.UTC(Number(month.slice(0, 4)), Number(month.slice(5, 7)) - 1, 1)) / 1000;

  // Columns keyed by month -> an array aligned with the chart's months (null where absent).
  function aligned(months, columnMonths, values) {
    const byMonth = new Map(columnMonths.map((m, i) => [m, values[i]]));
    return months.map((m) => (byMonth.has(m) ? byMonth.get(m) : null));
  }

  // The chart's lines and bands: [legend name or null (a band bound), values, uPlot series options].
  function layers(data, months) {
    const hist = data.history;
    const held = new Set(data.holdout ? data.holdout.month : []);
    const train = hist.value.map((v, i) => (held.has(hist.month[i]) ? null : v));
    const test = hist.value.map((v, i) => (held.has(hist.month[i]) ? v : null));
    const column = (block, name) => (block ? aligned(months, block.month, block[name]) : months.map(() => null));
    const points = (colour, size) => ({
      stroke: colour, fill: colour, width: 0, paths: () => null, points: { show: true, size: size, fill: colour },
    });
    const actual = (anomaly) => aligned(
      months,
      data.actuals.month.filter((_, i) => data.actuals.anomaly[i] === anomaly),
      data.actuals.value.filter((_, i) => data.actuals.anomaly[i] === anomaly));
    const bound = (colour) => ({ stroke: colour, width: 0.5 });
    const out = [
      ["history", aligned(months, hist.month, train), { stroke: "#1f77b4", width: 1.5 }],
      ["held-out actuals", aligned(months, hist.month, test), { stroke: "#111", width: 1, points: { show: true, size: 4 } }],
      ["holdout-model forecast", column(data.holdout, "mean"), { stroke: "#2ca02c", width: 1.5, dash: [6, 4] }],
      [null, column(data.holdout, "lower_95"), bound("rgba(44,160,44,0.4)")],
      [null, column(data.holdout, "upper_95"), bound("rgba(44,160,44,0.4)")],
      ["forecast mean", column(data.forecast, "mean"), { stroke: "#ff7f0e", width: 2 }],
    ];
    for (const level of data.levels) {
      out.push([null, column(data.forecast, "lower_" + level), bound("rgba(255,127,14,0.5)")]);
      out.push([null, column(data.forecast, "upper_" + level), bound("rgba(255,127,14,0.5)")]);
    }
    out.push(["recorded actual, inside 95%", actual(false), points("#9467bd", 7)]);
    out.push(["anomaly: actual outside 95%", actual(true), points("#d62728", 10)]);
    return out;
  }

  // uPlot band fills between each (lower, upper) pair, counted in uPlot series (x is 0).
  function bands(data) {
    const out = [{ series: [5, 4], fill: "rgba(44,160,44,0.15)" }];
    data.levels.forEach(function (_, i) {
      const lower = 7 + 2 * i;
      out.push({ series: [lower + 1, lower], fill: i === data.levels.length - 1 ? "rgba(255,127,14,0.15)" : "rgba(255,127,14,0.3)" });
    });
    return out;
  }

  // The readout for month index i: "2021-03 · forecast 5,266 (80%: 4,036–6,483; 95%: …)".
  function describe(data, months, columns, i) {
    const at = (k) => columns[k][i];
    const parts = [];
    const add = function (series, text, value) {
      const span = document.createElement("span");
      span.dataset.series = series;
      span.dataset.value = String(value);
      span.textContent = text;
      parts.push(span);
    };
    if (at(0) !== null) add("history", "history " + calls(at(0)), at(0));
    if (at(1) !== null) add("held-out", "held-out actual " + calls(at(1)), at(1));
    if (at(2) !== null) {
      add("holdout-forecast", "holdout-model forecast " + calls(at(2)) + " (95%: " + calls(at(3)) + "–" + calls(at(4)) + ")", at(2));
    }
    if (at(5) !== null) {
      const intervals = data.levels.map((level, k) => level + "%: " + calls(at(6 + 2 * k)) + "–" + calls(at(7 + 2 * k)));
      add("forecast", "forecast " + calls(at(5)) + " (" + intervals.join("; ") + ")", at(5));
    }
    const last = columns.length - 1;
    if (at(last - 1) !== null) add("actual", "recorded actual " + calls(at(last - 1)) + " (inside 95%)", at(last - 1));
    if (at(last) !== null) add("anomaly", "recorded actual " + calls(at(last)) + " (outside 95%: an anomaly)", at(last));
    return parts;
  }

  function legend(list) {
    const ul = document.createElement("ul");
    ul.className = "ichart-legend";
    for (const [name, values, options] of list) {
      if (name === null || values.every((v) => v === null)) continue; // a bound, or nothing to draw
      const li = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.backgroundColor = options.stroke; // CSSOM, not a style attribute: allowed by the CSP
      li.append(swatch, name);
      ul.appendChild(li);
    }
    for (const [name, colour] of [["forecast 80% interval", "rgba(255,127,14,0.45)"], ["forecast 95% interval", "rgba(255,127,14,0.15)"]]) {
      const li = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = "swatch band";
      swatch.style.backgroundColor = colour;
      li.append(swatch, name);
      ul.appendChild(li);
    }
    return ul;
  }

  function draw(figure, data) {
    const months = Array.from(new Set([
      ...data.history.month, ...(data.holdout ? data.holdout.month : []), ...data.forecast.month, ...data.actuals.month,
    ])).sort();
    const list = layers(data, months);
    const columns = list.map((layer) => layer[1]);
    const box = document.createElement("div");
    box.className = "ichart";
    box.tabIndex = 0;
    box.setAttribute("role", "img");
    box.setAttribute("aria-label", figure.querySelector("svg.chart title")?.textContent || figure.dataset.domain);
    const readout = document.createElement("p");
    readout.className = "chart-readout";
    readout.setAttribute("aria-live", "polite");
    readout.textContent = "Hover over the chart (or focus it and use the arrow keys) to read a month's values.";
    const reset = document.createElement("button");
    reset.type = "button";
    reset.className = "chart-reset";
    reset.textContent = "All months";
    const heading = document.createElement("p");
    heading.className = "ichart-title";
    heading.textContent = figure.dataset.domain + " (" + data.kind + " model)";
    const svg = figure.querySelector("svg.chart");
    figure.insertBefore(heading, svg);
    heading.after(box);
    box.after(readout, legend(list), reset);

    const show = function (u) {
      const i = u.cursor.idx;
      if (i === null || i === undefined) return;
      const time = document.createElement("time");
      time.textContent = months[i];
      readout.dataset.month = months[i];
      readout.replaceChildren(time, ...describe(data, months, columns, i).flatMap((s) => [" · ", s]));
    };
    const options = {
      width: Math.max(figure.clientWidth - 4, 200),
      height: HEIGHT,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"), // months are UTC month starts
      legend: { show: false }, // the readout and the legend list replace uPlot's table
      cursor: { drag: { x: true, y: false }, points: { size: 7 } },
      scales: { x: { time: true } },
      axes: [
        { label: "month" },
        { label: "calls per month", size: 64, values: (u, ticks) => ticks.map(calls) },
      ],
      series: [{}, ...list.map(([name, , opts]) => Object.assign({ label: name || "interval bound", spanGaps: false }, opts))],
      bands: bands(data),
      hooks: { setCursor: [show] },
    };
    const plot = new uPlot(options, [months.map(toSeconds), ...columns], box);
    figure.classList.add("interactive");
    reset.addEventListener("click", () => plot.setScale("x", { min: toSeconds(months[0]), max: toSeconds(months[months.length - 1]) }));
    // Arrow keys move the cursor one month: the chart's values without a pointer.
    let key = months.length - data.forecast.month.length - 1; // the first press lands on a forecast month
    box.addEventListener("keydown", function (event) {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      event.preventDefault();
      key = Math.min(Math.max(key + (event.key === "ArrowRight" ? 1 : -1), 0), months.length - 1);
      plot.setCursor({ left: plot.valToPos(toSeconds(months[key]), "x"), top: HEIGHT / 3 });
    });
    if (typeof ResizeObserver !== "undefined") {
      new ResizeObserver(function () {
        const width = Math.max(figure.clientWidth - 4, 200);
        if (Math.abs(width - plot.width) > 1) plot.setSize({ width: width, height: HEIGHT });
      }).observe(figure);
    }
  }

  for (const figure of document.querySelectorAll("figure.chart-card[data-chart-url]")) {
    fetch(figure.dataset.chartUrl, { headers: { Accept: "application/json" } })
      .then((response) => (response.ok ? response.json() : Promise.reject(new Error("HTTP " + response.status))))
      .then((data) => draw(figure, data))
      .catch(function (err) {
        figure.dataset.chartError = err.message; // the SVG stays; the reason is there for whoever looks
      });
  }
})();
