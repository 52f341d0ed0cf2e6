"""The dashboard in a real headless Chromium against a real ``dd-procmgrd --ws`` (SPEC §18).

One browser session for the module (starting Chromium costs seconds) and two daemons: one
with a token file (changes allowed with the token) and one without (read-only). The
browser is Debian's ``chromium`` driven through ``chromedriver`` by selenium, both given
by path so that nothing is downloaded.

Set ``DD_PM_DASHBOARD_SCREENSHOT=docs/dashboard.png`` to refresh the docs' screenshot.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from urllib.parse import urlsplit

import pytest

from web_daemon import web_daemon

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
TOKEN = "dashboard-test-token"
BULK = 1000

pytestmark = pytest.mark.skipif(
    not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
    reason="needs Debian's chromium and chromium-driver (packaging/install-test-deps.sh "
           "installs them when run as root, as `make test` does)")

DEMO = """\
processes:
  api-server:
    command: /usr/bin/python3
    args: ["-u", "-c", "import itertools, time\\nfor i in itertools.count():\\n  print(f'GET /v1/orders 200 {i}', flush=True); time.sleep(0.5)"]
    auto_start: true
    description: orders API
  web-frontend: {command: sleep, args: ["3600"], auto_start: true}
  worker-1: {command: sleep, args: ["3600"], auto_start: true}
  worker-2: {command: sleep, args: ["3600"], auto_start: true}
  nightly-report: {command: "true", process_type: oneshot, auto_start: true}
  flaky: {command: "false", auto_start: true, restart: on-failure, restart_sec: 0.1, start_limit_burst: 2}
  cache: {command: sleep, args: ["3600"]}
  cli-target: {command: sleep, args: ["3600"], auto_start: true}
  page-target: {command: sleep, args: ["3600"], auto_start: true}
groups:
  workers: {members: [worker-1, worker-2]}
"""


@pytest.fixture(scope="module")
def token_daemon():
    daemon = web_daemon(TOKEN, DEMO)
    yield daemon
    daemon.stop()
    shutil.rmtree(daemon.root, ignore_errors=True)


@pytest.fixture(scope="module")
def readonly_daemon():
    daemon = web_daemon(None, "processes:\n  watched: {command: sleep, args: ['3600'], auto_start: true}\n")
    yield daemon
    daemon.stop()
    shutil.rmtree(daemon.root, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must never try to download
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="pmweb-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1400,860",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver, what, condition, timeout=15):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(
        lambda d: condition(d), message=f"timed out waiting for {what}")


def row_states(driver) -> dict[str, str]:
    """Name -> state text of every row the page shows (one script call)."""
    return driver.execute_script("""
        const out = {};
        for (const tr of document.querySelectorAll('#rows tr'))
            out[tr.dataset.name] = tr.children[1].textContent;
        return out;""")


def open_page(driver, daemon, fragment=""):
    driver.get("about:blank")  # a fragment-only change would not reload the page
    driver.get(daemon.origin + "/" + fragment)
    wait(driver, "the process table", lambda d: len(row_states(d)) > 0)


def select(driver, name):
    from selenium.webdriver.common.by import By

    button = driver.find_element(By.CSS_SELECTOR, f'#rows tr[data-name="{name}"] th button')
    button.click()
    wait(driver, f"the detail panel of {name}",
         lambda d: d.find_element(By.ID, "detail-title").text == name and
         d.find_element(By.ID, "fields").text != "")


# ---------------------------------------------------------------------- token daemon

def test_page_lists_every_process_with_its_state(browser, token_daemon):
    open_page(browser, token_daemon, f"#token={TOKEN}")
    expected = {r["name"]: r["state"] for r in token_daemon.cli("--json", "list").json}
    wait(browser, "a row per process", lambda d: set(row_states(d)) == set(expected))
    states = row_states(browser)
    for name in ("web-frontend", "worker-1", "cache", "nightly-report"):
        assert states[name] == expected[name]
    assert browser.execute_script("return location.hash") == "", "the token stays in the URL"


def test_a_stop_made_with_the_cli_shows_without_a_reload_within_a_second(browser, token_daemon):
    open_page(browser, token_daemon, f"#token={TOKEN}")
    wait(browser, "cli-target running", lambda d: row_states(d).get("cli-target") == "running")
    browser.execute_script("""
        const cell = document.querySelector('#rows tr[data-name="cli-target"]').children[1];
        window.__seenStopped = null;
        new MutationObserver(() => {
            if (cell.textContent === 'stopped' && window.__seenStopped === null)
                window.__seenStopped = Date.now() / 1000;
        }).observe(cell, {childList: true, characterData: true, subtree: true});
        window.__pageId = Math.random();""")
    page_id = browser.execute_script("return window.__pageId")
    result = token_daemon.cli("stop", "cli-target")
    stopped_at = time.time()
    assert result.code == 0, result
    seen = wait(browser, "the page to show cli-target stopped",
                lambda d: d.execute_script("return window.__seenStopped"), timeout=10)
    latency = seen - stopped_at
    print(f"CLI stop -> page shows 'stopped': {latency * 1000:.0f} ms")
    assert latency < 1.0
    assert browser.execute_script("return window.__pageId") == page_id, "the page reloaded"


def test_stop_button_with_the_token_from_the_fragment_stops_the_process(browser, token_daemon):
    from selenium.webdriver.common.by import By

    open_page(browser, token_daemon, f"#token={TOKEN}")
    wait(browser, "page-target running", lambda d: row_states(d).get("page-target") == "running")
    select(browser, "page-target")
    stop = browser.find_element(By.CSS_SELECTOR, '.actions button[data-action="stop"]')
    wait(browser, "the Stop button to be enabled", lambda d: stop.is_enabled())
    stop.click()
    token_daemon.wait_state("page-target", "stopped")
    wait(browser, "the row to show stopped",
         lambda d: row_states(d).get("page-target") == "stopped")
    assert "stopped" in browser.find_element(By.ID, "action-result").text


def test_the_selected_process_shows_its_log_lines_live(browser, token_daemon):
    from selenium.webdriver.common.by import By

    open_page(browser, token_daemon, f"#token={TOKEN}")
    select(browser, "api-server")

    def last_counter(d):
        lines = re.findall(r"GET /v1/orders 200 (\d+)", d.find_element(By.ID, "log").text)
        return int(lines[-1]) if lines else None

    first = wait(browser, "the log tail", last_counter)
    wait(browser, "a new live log line", lambda d: (last_counter(d) or 0) > first, timeout=10)


def test_no_request_leaves_the_daemons_origin(browser, token_daemon):
    open_page(browser, token_daemon, f"#token={TOKEN}")
    select(browser, "api-server")
    browser.get_log("performance")  # drop what earlier tests caused
    open_page(browser, token_daemon, f"#token={TOKEN}")
    select(browser, "web-frontend")
    urls = set(browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"))
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            urls.add(message["params"].get("request", {}).get("url") or message["params"]["url"])
    origin = urlsplit(token_daemon.origin)
    assert any("/api/processes" in u for u in urls) and any(u.startswith("ws://") for u in urls)
    foreign = [u for u in urls if urlsplit(u).netloc != origin.netloc]
    assert foreign == []


def test_a_wrong_token_is_refused_and_the_page_asks_for_one(browser, token_daemon):
    from selenium.webdriver.common.by import By

    browser.get("about:blank")
    browser.get(token_daemon.origin + "/#token=wrong")
    form = browser.find_element(By.ID, "token-form")
    wait(browser, "the token form", lambda d: form.is_displayed())
    assert "refused" in browser.find_element(By.ID, "token-error").text
    assert row_states(browser) == {}
    browser.find_element(By.ID, "token-input").send_keys(TOKEN + "\n")
    wait(browser, "the table after the right token", lambda d: len(row_states(d)) > 0)


def test_the_page_renders_to_a_screenshot(browser, token_daemon, tmp_path):
    """Copied to DD_PM_DASHBOARD_SCREENSHOT when set (how docs/dashboard.png is made)."""
    token_daemon.cli("start", "cli-target", "page-target")
    open_page(browser, token_daemon, f"#token={TOKEN}")
    select(browser, "api-server")
    wait(browser, "CPU figures (the second stats push)",
         lambda d: d.execute_script(
             "return document.querySelector('#rows tr[data-name=\"api-server\"]')"
             ".children[6].textContent") != "", timeout=15)
    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    target = os.environ.get("DD_PM_DASHBOARD_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)


def test_a_thousand_processes_render_and_filtering_stays_responsive(browser, token_daemon):
    """Last in the module: it adds BULK processes to the token daemon."""
    bulk = "processes:\n" + "".join(
        f"  bulk-{i:04d}: {{command: sleep, args: ['3600']}}\n" for i in range(BULK))
    token_daemon.write_config("bulk", bulk)
    started = time.monotonic()
    result = token_daemon.cli("reload-config", timeout=120)
    assert result.code == 0, result
    print(f"reload adding {BULK} processes: {time.monotonic() - started:.1f} s")
    total = len(token_daemon.cli("--json", "list").json)
    assert total >= BULK
    started = time.monotonic()
    open_page(browser, token_daemon, f"#token={TOKEN}")
    wait(browser, f"{total} rows", lambda d: len(row_states(d)) == total, timeout=30)
    render = time.monotonic() - started
    print(f"page load to {total} rows: {render:.2f} s")
    assert render < 10
    timing = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        // the main thread's longest stall over 3 s, covering at least one stats push
        let last = performance.now(), worst = 0;
        const tick = setInterval(() => {
            const now = performance.now(); worst = Math.max(worst, now - last); last = now;
        }, 20);
        setTimeout(() => {
            clearInterval(tick);
            const filter = document.getElementById('filter');
            const t0 = performance.now();
            filter.value = 'bulk-0999';
            filter.dispatchEvent(new Event('input'));
            requestAnimationFrame(() => {
                const shown = [...document.querySelectorAll('#rows tr')].filter(r => !r.hidden);
                done({worst, filter: performance.now() - t0,
                      shown: shown.map(r => r.dataset.name)});
            });
        }, 3000);""")
    print(f"longest main-thread stall: {timing['worst']:.0f} ms; "
          f"filter keystroke to frame: {timing['filter']:.0f} ms")
    assert timing["shown"] == ["bulk-0999"]
    assert timing["filter"] < 2000
    assert timing["worst"] < 1000


# ---------------------------------------------------------------------- read-only daemon

def test_without_a_token_the_page_is_read_only_and_a_forced_post_is_refused(browser,
                                                                           readonly_daemon):
    from selenium.webdriver.common.by import By

    open_page(browser, readonly_daemon)
    assert browser.find_element(By.ID, "mode").text == "read-only"
    select(browser, "watched")
    buttons = browser.find_elements(By.CSS_SELECTOR, ".actions button")
    assert len(buttons) == 5 and not any(b.is_enabled() for b in buttons)
    assert "Read-only" in browser.find_element(By.ID, "actions-note").text
    answer = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/api/processes/watched/stop', {method: 'POST'})
            .then(async r => done({status: r.status, body: await r.json()}));""")
    assert answer["status"] == 403
    assert answer["body"]["error"]["code"] == "PERMISSION_DENIED"
    assert readonly_daemon.record("watched")["state"] == "running"


def test_connection_loss_shows_a_banner_and_the_page_reconnects_and_reloads(browser,
                                                                           readonly_daemon):
    """Last in the module: it restarts the read-only daemon (same port, one more process)."""
    from selenium.webdriver.common.by import By

    open_page(browser, readonly_daemon)
    banner = browser.find_element(By.ID, "banner")
    assert not banner.is_displayed()
    readonly_daemon.write_config("newcomer", "command: sleep\nargs: ['3600']\n")
    readonly_daemon.stop()
    wait(browser, "the connection-lost banner",
         lambda d: banner.is_displayed() and "reconnecting" in banner.text.lower())
    readonly_daemon.start()
    wait(browser, "the reloaded list with the new process",
         lambda d: "newcomer" in row_states(d), timeout=30)
    wait(browser, "the banner to go", lambda d: not banner.is_displayed())
