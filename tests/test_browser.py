"""The dashboard in real headless Chromium (Debian's chromium + chromium-driver, driven by selenium)
against real gunicorn (the committed gunicorn.conf.py, loopback, a freshly trained Output): the
interactive charts (uPlot) show the hovered month's values and zoom, the SVG charts render when
scripts are off, the form answers a valid month with a forecast table and an invalid month with an
inline error, the page fits a phone-width screen, and the CSP blocks nothing the page needs.
Screenshots go to the test's temporary directory. Skipped locally without Chromium; required in CI.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from conftest import csp_violations

from MLPipeline.config import KINDS
from MLPipeline.sample_data import DEFAULT_QUEUES

WAIT = 30  # seconds for the page or the form's answer (the first page view renders the charts)
DESKTOP = (1280, 1000)
PHONE = (390, 844)


def wait_for(driver, condition, message: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(condition, message)


def open_page(driver, base: str, size=DESKTOP) -> None:
    driver.set_window_size(*size)
    driver.get(f"{base}/")
    wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete", "page did not load")


@contextlib.contextmanager
def scripts_disabled(driver):
    """Pages opened inside run no script: what a reader without JavaScript sees."""
    driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        yield
    finally:
        driver.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})


def interactive_charts(driver, count: int) -> list:
    """The chart figures once charts.js has drawn ``count`` of them (failing with the reason it gave)."""
    from selenium.webdriver.common.by import By

    def drawn(d):
        errors = [f.get_attribute("data-chart-error") for f in d.find_elements(By.CSS_SELECTOR, "figure.chart-card")]
        assert not any(errors), errors
        found = d.find_elements(By.CSS_SELECTOR, "figure.chart-card.interactive")
        return found if len(found) == count else None

    return wait_for(driver, drawn, f"{count} interactive charts were not drawn")


def calls(value: float) -> str:
    """A volume as the dashboard's scripts show it (rounded half up, thousands separated)."""
    return f"{math.floor(value + 0.5):,}"


def month_seconds(month: str) -> float:
    import calendar

    return calendar.timegm((int(month[:4]), int(month[5:7]), 1, 0, 0, 0))


def hover_month(driver, figure, months: list[str], month: str):
    """Move the mouse over ``month`` on the figure's full-range chart; return the readout element."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    plot = figure.find_element(By.CSS_SELECTOR, ".u-over")  # uPlot's plotting area
    first, last = month_seconds(months[0]), month_seconds(months[-1])
    width = plot.size["width"]
    x = min(max((month_seconds(month) - first) / (last - first) * width, 1), width - 2)  # inside the edges
    ActionChains(driver).move_to_element_with_offset(plot, round(x - width / 2), 0).perform()
    readout = figure.find_element(By.CSS_SELECTOR, ".chart-readout")
    wait_for(driver, lambda d: readout.get_attribute("data-month") == month,
             f"the readout does not show {month}: {readout.get_attribute('data-month')}")
    return readout


def readout_value(readout, series: str) -> tuple[float, str]:
    from selenium.webdriver.common.by import By

    (span,) = readout.find_elements(By.CSS_SELECTOR, f'span[data-series="{series}"]')
    return float(span.get_attribute("data-value")), span.text


def full_page_screenshot(driver, path: Path) -> Path:
    """Resize the window to the page's height, then save a PNG of the whole page."""
    width = driver.execute_script("return window.innerWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(height + 120, 12000))
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    return path


def submit(driver, month: str, phone_lines: str = "", channels: str = "") -> None:
    from selenium.webdriver.common.by import By

    for name, value in (("month", month), ("phone_lines", phone_lines), ("channels", channels)):
        field = driver.find_element(By.ID, name)
        field.clear()
        if value:
            field.send_keys(value)
    driver.find_element(By.ID, "predict-submit").click()


def test_interactive_chart_shows_the_hovered_months_values_and_zooms(server, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    domain = DEFAULT_QUEUES[0]
    data = requests.get(f"{server}/dashboard/chart?series={quote(domain)}", timeout=30).json()
    anomaly_month = data["forecast"]["month"][2]
    anomaly = data["forecast"]["upper_95"][2] * 2  # outside the 95% interval: drawn as an anomaly
    recorded = requests.post(f"{server}/actuals", json={"month": anomaly_month, "domain": domain,
                                                        "value": anomaly}, timeout=30)
    assert recorded.status_code == 200
    open_page(browser, server)
    figure = interactive_charts(browser, len(DEFAULT_QUEUES))[0]
    assert figure.get_attribute("data-domain") == domain
    assert not figure.find_element(By.CSS_SELECTOR, "svg.chart").is_displayed()  # the fallback steps aside
    assert figure.find_element(By.CSS_SELECTOR, ".ichart canvas").size["width"] > 200
    months = sorted({*data["history"]["month"], *data["forecast"]["month"]})

    history = data["history"]
    for i in (1, 40, len(history["month"]) - 30):  # months before the holdout
        readout = hover_month(browser, figure, months, history["month"][i])
        value, text = readout_value(readout, "history")
        assert value == history["value"][i] and text == f"history {calls(value)}"
    held = data["holdout"]
    readout = hover_month(browser, figure, months, held["month"][3])
    assert readout_value(readout, "held-out")[0] == history["value"][history["month"].index(held["month"][3])]
    value, text = readout_value(readout, "holdout-forecast")
    assert value == held["mean"][3]
    assert text == f"holdout-model forecast {calls(value)} (95%: {calls(held['lower_95'][3])}–{calls(held['upper_95'][3])})"
    fc = data["forecast"]
    for i in (2, len(fc["month"]) - 2):
        readout = hover_month(browser, figure, months, fc["month"][i])
        value, text = readout_value(readout, "forecast")
        assert value == fc["mean"][i]
        assert text == (f"forecast {calls(value)} (80%: {calls(fc['lower_80'][i])}–{calls(fc['upper_80'][i])}; "
                        f"95%: {calls(fc['lower_95'][i])}–{calls(fc['upper_95'][i])})")
    readout = hover_month(browser, figure, months, anomaly_month)
    assert readout_value(readout, "anomaly")[0] == anomaly

    # drag across the forecast months: the chart zooms to them; double-click zooms back out
    plot = figure.find_element(By.CSS_SELECTOR, ".u-over")
    width = plot.size["width"]
    start = (month_seconds(fc["month"][0]) - month_seconds(months[0])) / (
        month_seconds(months[-1]) - month_seconds(months[0])) * width
    ActionChains(browser).move_to_element_with_offset(plot, round(start - width / 2), 0).click_and_hold() \
        .move_to_element_with_offset(plot, round(width / 2) - 2, 0).release().perform()
    ActionChains(browser).move_to_element_with_offset(plot, -round(width / 2) + 3, 0).perform()  # the left edge
    readout = figure.find_element(By.CSS_SELECTOR, ".chart-readout")
    wait_for(browser, lambda d: readout.get_attribute("data-month") in fc["month"][:2],
             f"not zoomed to the forecast: the left edge is {readout.get_attribute('data-month')}")
    ActionChains(browser).double_click(plot).perform()
    hover_month(browser, figure, months, months[0])  # the full range again
    # without a pointer: focus the chart, and the arrow keys step through the months
    box = figure.find_element(By.CSS_SELECTOR, ".ichart")
    browser.execute_script("arguments[0].focus()", box)
    box.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    wait_for(browser, lambda d: readout.get_attribute("data-month") == fc["month"][1], "arrow keys did not move")
    logged = browser.get_log("browser")
    assert [e["message"] for e in logged if "Content Security Policy" in e["message"] or e["level"] == "SEVERE"] == []
    full_page_screenshot(browser, tmp_path / "interactive.png")


def test_svg_charts_render_without_javascript_and_no_csp_violation(server, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    with scripts_disabled(browser):
        open_page(browser, server)
        assert not browser.find_elements(By.CSS_SELECTOR, ".ichart")
        charts = browser.find_elements(By.CSS_SELECTOR, "figure.chart-card svg.chart")
        assert [c.find_element(By.XPATH, "..").get_attribute("data-domain") for c in charts] == list(DEFAULT_QUEUES)
        for chart in charts:
            size = chart.size
            assert size["width"] > 200 and size["height"] > 100, size
            texts = browser.execute_script(
                "return Array.from(arguments[0].querySelectorAll('text'), t => t.textContent)", chart
            )
            assert "calls per month" in texts and "month" in texts
            assert "forecast 95% interval" in texts  # the legend
            # the plot was painted with its colours (presentation attributes, not blocked styles)
            fills = browser.execute_script(
                "return Array.from(arguments[0].querySelectorAll('path'), p => getComputedStyle(p).fill)", chart
            )
            assert any(f not in ("rgb(0, 0, 0)", "none") for f in fills)
        # the stylesheet loaded under the CSP: the highlighted row has its background colour
        row = browser.find_element(By.CSS_SELECTOR, "#metrics-table tr.preferred")
        assert row.value_of_css_property("background-color") not in ("rgba(0, 0, 0, 0)", "transparent")
        assert csp_violations(browser) == []
        full_page_screenshot(browser, tmp_path / "dashboard-no-script.png")


def test_form_shows_forecast_rows_with_intervals(server, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    open_page(browser, server)
    month = browser.find_element(By.ID, "month").get_attribute("value")  # the month after training
    submit(browser, month, "5", "3")
    rows = wait_for(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, "#predict-result:not([hidden]) #predict-table tbody tr"),
        "no forecast rows appeared",
    )
    cells = [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert [c[0] for c in cells] == list(DEFAULT_QUEUES)
    for _domain, kind, row_month, mean, band80, band95, lines, channels in cells:
        assert row_month == month and kind in KINDS
        low80, high80 = (float(v.replace(",", "")) for v in band80.split(" – "))
        low95, high95 = (float(v.replace(",", "")) for v in band95.split(" – "))
        assert low95 <= low80 <= float(mean.replace(",", "")) <= high80 <= high95
        assert (lines, channels) == ("5", "3")
    assert browser.find_element(By.ID, "month-error").get_attribute("hidden") is not None
    full_page_screenshot(browser, tmp_path / "forecast.png")


def test_form_shows_invalid_month_inline(server, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    open_page(browser, server)
    submit(browser, "2021-13")
    error = wait_for(
        browser,
        lambda d: (e := d.find_element(By.ID, "month-error")).is_displayed() and e,
        "no inline error for the month",
    )
    assert "2021-13" in error.text or "month" in error.text.lower()
    assert browser.find_element(By.ID, "month").get_attribute("aria-invalid") == "true"
    assert not browser.find_element(By.ID, "predict-result").is_displayed()
    browser.save_screenshot(str(tmp_path / "invalid-month.png"))


def test_page_fits_a_phone_width_screen(server, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    open_page(browser, server, size=PHONE)
    inner = browser.execute_script("return window.innerWidth")
    for figure in interactive_charts(browser, len(DEFAULT_QUEUES)):
        canvas = figure.find_element(By.CSS_SELECTOR, ".ichart canvas")
        assert 200 <= canvas.size["width"] <= inner and canvas.size["height"] > 0
    assert browser.execute_script("return document.documentElement.scrollWidth") <= inner
    submit(browser, "2021-13")
    wait_for(browser, lambda d: d.find_element(By.ID, "month-error").is_displayed(), "no inline error")
    full_page_screenshot(browser, tmp_path / "phone.png")


@pytest.fixture(scope="module")
def many_server(many_output, tmp_path_factory):
    from tests import servers

    with servers.gunicorn(many_output, tmp_path_factory.mktemp("gunicorn-many")) as base:
        yield base


def test_two_hundred_queues_get_an_overview_and_the_picker_draws_the_one_chosen(many_server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(browser, many_server)
    rows = browser.find_elements(By.CSS_SELECTOR, "#overview-table tbody tr")
    assert len(rows) == 50 and not browser.find_elements(By.CSS_SELECTOR, "figure.chart-card")
    picker = browser.find_element(By.ID, "series-input")
    picker.send_keys("trav")  # the suggestions come from GET /series?q=
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#series-options option")) == 2,
             "no suggestions for 'trav'")
    assert {o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#series-options option")} == {
        "Travel", "TRAVEL"}
    picker.clear()
    picker.send_keys("a/b", Keys.ENTER)
    figure = interactive_charts(browser, 1)[0]
    assert figure.get_attribute("data-domain") == "a/b"
    assert figure.find_element(By.CSS_SELECTOR, ".ichart canvas").size["width"] > 200
    # a name with markup stays text: the link in the overview shows it, no element is made of it
    link = browser.find_element(By.LINK_TEXT, "<b>bold</b> & co")
    link.click()
    figure = interactive_charts(browser, 1)[0]  # its JSON was fetched by that name
    assert figure.get_attribute("data-domain") == "<b>bold</b> & co" and not browser.find_elements(By.TAG_NAME, "b")
    assert figure.find_element(By.CSS_SELECTOR, ".ichart-title").text == "<b>bold</b> & co (seasonal-naive model)"
    assert csp_violations(browser) == []
    full_page_screenshot(browser, tmp_path / "many.png")
