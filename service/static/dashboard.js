// The dashboard's prediction form: POST /predict as JSON, then show the answer or the error inline;
// and the series picker's suggestions (GET /series?q=...). Served from static/ so the page's
// Content-Security-Policy needs no inline script.
"use strict";

(function () {
  const picker = document.getElementById("series-input");
  const options = document.getElementById("series-options");
  if (picker && options) {
    let pending = null;
    picker.addEventListener("input", function () {
      const text = picker.value.trim();
      clearTimeout(pending);
      if (!text) {
        return;
      }
      pending = setTimeout(async function () {
        try {
          const response = await fetch("/series?limit=20&q=" + encodeURIComponent(text),
            { headers: { Accept: "application/json" } });
          if (!response.ok) {
            return;
          }
          const data = await response.json();
          options.replaceChildren(...data.series.map(function (s) {
            const option = document.createElement("option");
            option.value = s.id;
            return option;
          }));
        } catch (_) {
          // suggestions are a convenience; the form still submits
        }
      }, 150);
    });
  }
})();

(function () {
  const form = document.getElementById("predict-form");
  if (!form) {
    return;
  }
  const submit = document.getElementById("predict-submit");
  const result = document.getElementById("predict-result");
  const meta = document.getElementById("predict-meta");
  const tbody = document.querySelector("#predict-table tbody");
  const general = document.getElementById("predict-error");
  // API error "field" (its first name: "instances[0].month" -> "instances") -> the element showing it
  const REGRESSORS = (form.dataset.regressors || "").split(",").filter(Boolean);
  const FIELDS = ["month", "domains"].concat(REGRESSORS);

  const calls = (value) => Math.round(value).toLocaleString("en-US");

  function clearErrors() {
    for (const name of FIELDS.concat("predict")) {
      const slot = document.getElementById(name + "-error");
      slot.textContent = "";
      slot.hidden = true;
    }
    for (const input of form.querySelectorAll("[aria-invalid]")) {
      input.removeAttribute("aria-invalid");
    }
  }

  function showError(field, message) {
    const name = (field || "").split(/[.[]/)[0];
    const known = FIELDS.includes(name);
    const slot = document.getElementById((known ? name : "predict") + "-error");
    slot.textContent = message;
    slot.hidden = false;
    const input = known ? document.getElementById(name) : null;
    if (input) {
      input.setAttribute("aria-invalid", "true");
    }
  }

  // A number input's value, undefined when empty; null when the text is not a number.
  function numberField(name) {
    const input = document.getElementById(name);
    if (input.validity.badInput) {
      return null;
    }
    const raw = input.value.trim();
    return raw === "" ? undefined : Number(raw);
  }

  function cell(row, text, numeric) {
    const td = document.createElement("td");
    td.textContent = text;
    if (numeric) {
      td.className = "num";
    }
    row.appendChild(td);
  }

  function showPredictions(data) {
    tbody.replaceChildren();
    for (const p of data.predictions) {
      const row = document.createElement("tr");
      cell(row, p.domain);
      cell(row, p.kind);
      cell(row, p.month ?? p.period);
      cell(row, calls(p.mean), true);
      cell(row, calls(p.lower_80) + " – " + calls(p.upper_80), true);
      cell(row, calls(p.lower_95) + " – " + calls(p.upper_95), true);
      for (const name of REGRESSORS) {
        cell(row, String(p[name]), true);
      }
      tbody.appendChild(row);
    }
    let text = "Model " + data.model_version + " · volume per month, 80% and 95% prediction intervals.";
    if (data.assumption) {
      text += " Note: " + data.assumption + ".";
    }
    meta.textContent = text;
    result.hidden = false;
  }

  async function send(event) {
    event.preventDefault();
    clearErrors();
    const typed = document.querySelector('input[name="domains"][type="text"]');
    const body = {
      [document.getElementById("month").name]: document.getElementById("month").value.trim(),
      domains: typed
        ? [typed.value.trim()]
        : Array.from(form.querySelectorAll('input[name="domains"]:checked'), (box) => box.value),
    };
    for (const name of REGRESSORS) {
      const value = numberField(name);
      if (value === null) {
        showError(name, "enter a number (or leave it empty to use the assumed value)");
        return;
      }
      if (value !== undefined) {
        body[name] = value;
      }
    }
    submit.disabled = true;
    form.setAttribute("aria-busy", "true");
    try {
      const response = await fetch(form.getAttribute("action"), {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
      let data = null;
      try {
        data = await response.json();
      } catch (_) {
        data = null;
      }
      if (response.ok && data && Array.isArray(data.predictions)) {
        showPredictions(data);
      } else if (data && data.error) {
        result.hidden = true;
        showError(data.error.field, data.error.message);
      } else {
        result.hidden = true;
        showError(null, "The service answered HTTP " + response.status + ".");
      }
    } catch (err) {
      result.hidden = true;
      showError(null, "Could not reach the service: " + err.message);
    } finally {
      submit.disabled = false;
      form.removeAttribute("aria-busy");
    }
  }

  form.addEventListener("submit", send);
})();
