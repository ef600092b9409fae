"""The dashboard in real headless Chromium (Debian's chromium + chromium-driver, driven by selenium)
against real gunicorn (the committed gunicorn.conf.py, loopback, a freshly trained Output): the
charts render, the form answers a valid month with a forecast table and an invalid month with an
inline error, the page fits a phone-width screen, and the CSP blocks nothing the page needs.
Screenshots go to the test's temporary directory. Skipped locally without Chromium; required in CI.
"""

from __future__ import annotations

from pathlib import Path

import pytest
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


def test_charts_render_with_styles_and_no_csp_violation(server, browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.by import By

    open_page(browser, server)
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
    full_page_screenshot(browser, tmp_path / "dashboard.png")


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
    assert browser.execute_script("return document.documentElement.scrollWidth") <= inner
    for chart in browser.find_elements(By.CSS_SELECTOR, "svg.chart"):
        assert 0 < chart.size["width"] <= inner and chart.size["height"] > 0
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
    figure = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "figure.chart-card"), "no chart drawn")[0]
    assert figure.get_attribute("data-domain") == "a/b"
    assert figure.find_element(By.CSS_SELECTOR, "svg.chart").size["width"] > 200
    # a name with markup stays text: the link in the overview shows it, no element is made of it
    link = browser.find_element(By.LINK_TEXT, "<b>bold</b> & co")
    link.click()
    figure = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "figure.chart-card"), "no chart drawn")[0]
    assert figure.get_attribute("data-domain") == "<b>bold</b> & co" and not browser.find_elements(By.TAG_NAME, "b")
    assert csp_violations(browser) == []
    full_page_screenshot(browser, tmp_path / "many.png")
