"""The dev stack's demo checkout, clicked through in a real browser (headless Chromium).

A person picks an amount and a sandbox method on the demo page, is sent to the sandbox PSP's
authentication page, presses a button, comes back and watches the deposit end; the test then
checks through the API what the page showed. Runs against the session's stack (API, worker,
sandbox PSP); the demo checkout is its own process, as in `make dev`.

With PAYSAGA_DEMO_SCREENSHOTS=<folder> (`make screenshots`: docs/demo) each step's screenshot is
kept there for the README; otherwise under the test's temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from devtools.stack import free_port
from paysaga.settings import DEV_MERCHANT_KEY
from tests.psp_fixtures import wait_until
from tests.stack import TERMINAL, Stack

REPO_ROOT = Path(__file__).resolve().parents[2]
WINDOW = (1000, 700)  # the page's viewport: the screenshots' size
WAIT_SECONDS = 30
MISSING_BROWSER = (
    "the demo checkout's browser test needs Debian's Chromium and its driver: "
    "`apt-get install chromium chromium-driver` (`make test` installs them when run as root)"
)


@pytest.fixture(scope="module")
def demo_url(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m devtools.demo_checkout` on a free port, calling the stack's API."""
    port = free_port()
    log = tmp_path_factory.mktemp("demo") / "demo_checkout.log"
    argv = ["--port", str(port), "--api-url", stack.api_url]
    env = {**os.environ, "PAYSAGA_ENVIRONMENT": "development"}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "devtools.demo_checkout", *argv],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url, process, log), timeout=30, interval=0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _answers(url: str, process: subprocess.Popen[bytes], log: Path) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"the demo checkout exited:\n{log.read_text(errors='replace')}")
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Headless Chromium at a fixed window size, through Debian's chromedriver."""
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.fail(MISSING_BROWSER, pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(chromedriver, port=free_port()))
    try:
        # The page's viewport at WINDOW, whatever the browser's own frame takes.
        driver.set_window_size(*WINDOW)
        frame = driver.execute_script("return window.outerHeight - window.innerHeight;")
        driver.set_window_size(WINDOW[0], WINDOW[1] + int(frame))
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    """The stack's API with the dev merchant key: what the test checks the page against."""
    headers = {"Authorization": f"Bearer {DEV_MERCHANT_KEY}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each step's screenshot goes."""
    kept = os.environ.get("PAYSAGA_DEMO_SCREENSHOTS")
    folder = REPO_ROOT / kept if kept else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_3ds_deposit_through_the_demo_checkout_succeeds(
    browser: WebDriver, demo_url: str, api: httpx.Client, screenshots: Path
) -> None:
    start_checkout(browser, demo_url, "42.50", "pm_3ds_required", screenshots / "1-checkout.png")
    on_authentication_page(browser, "3-D Secure: confirm it is you", "42.50 EUR")
    snap(browser, screenshots / "2-3ds-authentication.png")

    payment_id = answer(browser, demo_url, "authenticated")
    assert shown_when_terminal(browser) == ("succeeded", "", "42.50 EUR")
    assert "Deposit succeeded" in browser.find_element(By.ID, "headline").text
    snap(browser, screenshots / "3-3ds-succeeded.png")

    payment = api.get(f"/v1/payments/{payment_id}").json()
    assert (payment["status"], payment["provider"], payment["amount"]) == (
        "succeeded",
        "sandbox-cards",
        4250,
    )
    assert balance(api, payment["customer_id"]) == {"posted": 4250, "held": 0, "available": 4250}


def test_pay_by_bank_deposit_through_the_demo_checkout_succeeds(
    browser: WebDriver, demo_url: str, api: httpx.Client, screenshots: Path
) -> None:
    start_checkout(browser, demo_url, "10", "pm_bank_redirect")
    on_authentication_page(browser, "Approve the payment at your bank", "10.00 EUR")
    snap(browser, screenshots / "4-bank-approval.png")

    payment_id = answer(browser, demo_url, "authenticated")
    assert shown_when_terminal(browser) == ("succeeded", "", "10.00 EUR")
    snap(browser, screenshots / "5-bank-succeeded.png")

    payment = api.get(f"/v1/payments/{payment_id}").json()
    assert (payment["status"], payment["provider"]) == ("succeeded", "sandbox-bank")
    assert balance(api, payment["customer_id"]) == {"posted": 1000, "held": 0, "available": 1000}


def test_failed_authentication_in_the_demo_checkout_credits_nothing(
    browser: WebDriver, demo_url: str, api: httpx.Client, screenshots: Path
) -> None:
    start_checkout(browser, demo_url, "42.50", "pm_3ds_required")
    on_authentication_page(browser, "3-D Secure: confirm it is you", "42.50 EUR")

    payment_id = answer(browser, demo_url, "failed")
    assert shown_when_terminal(browser) == ("failed", "authentication_failed", "0.00 EUR")
    assert "Deposit failed" in browser.find_element(By.ID, "headline").text
    snap(browser, screenshots / "6-authentication-failed.png")

    payment = api.get(f"/v1/payments/{payment_id}").json()
    assert (payment["status"], payment["failure_code"]) == ("failed", "authentication_failed")
    assert balance(api, payment["customer_id"]) == {"posted": 0, "held": 0, "available": 0}


def test_3ds_deposit_declined_after_authentication_credits_nothing(
    browser: WebDriver, demo_url: str, api: httpx.Client
) -> None:
    start_checkout(browser, demo_url, "5.00", "pm_3ds_required_declined")
    on_authentication_page(browser, "3-D Secure: confirm it is you", "5.00 EUR")

    payment_id = answer(browser, demo_url, "authenticated")
    assert shown_when_terminal(browser) == ("failed", "provider_declined", "0.00 EUR")
    payment = api.get(f"/v1/payments/{payment_id}").json()
    assert (payment["status"], payment["failure_code"]) == ("failed", "provider_declined")
    assert balance(api, payment["customer_id"])["posted"] == 0


def test_card_without_authentication_goes_straight_to_the_status_page(
    browser: WebDriver, demo_url: str, api: httpx.Client
) -> None:
    start_checkout(browser, demo_url, "3.10", "pm_ok")
    WebDriverWait(browser, WAIT_SECONDS).until(
        expected_conditions.url_contains(f"{demo_url}/?payment_id=")
    )
    assert shown_when_terminal(browser) == ("succeeded", "", "3.10 EUR")
    [payment_id] = parse_qs(urlsplit(browser.current_url).query)["payment_id"]
    payment = api.get(f"/v1/payments/{payment_id}").json()
    assert (payment["status"], payment["amount"]) == ("succeeded", 310)


def test_checkout_refuses_an_amount_it_cannot_take(browser: WebDriver, demo_url: str) -> None:
    for amount in ("ten", "0", "1.005", "50000.01"):
        start_checkout(browser, demo_url, amount, "pm_ok")
        error = WebDriverWait(browser, WAIT_SECONDS).until(
            expected_conditions.visibility_of_element_located((By.ID, "error"))
        )
        assert "Enter an amount between 0.01 and 50,000 EUR" in error.text
        assert browser.find_element(By.ID, "amount").get_attribute("value") == amount


def test_status_page_follows_a_deposit_approved_elsewhere(
    browser: WebDriver, demo_url: str, api: httpx.Client, screenshots: Path
) -> None:
    """The customer approves in their bank's app on another device: the page, left open, updates."""
    start_checkout(browser, demo_url, "7.25", "pm_bank_redirect")
    on_authentication_page(browser, "Approve the payment at your bank", "7.25 EUR")
    approval_url = browser.current_url
    reference = browser.find_element(By.XPATH, "//p[starts-with(., 'Reference: ')]").text
    payment_id = reference.removeprefix("Reference: ")

    browser.get(f"{demo_url}/?payment_id={payment_id}")
    assert browser.find_element(By.ID, "status").text == "requires_action"
    assert browser.find_element(By.ID, "balance").text == "0.00 EUR"
    link = browser.find_element(By.ID, "continue-link")
    assert link.is_displayed() and link.get_attribute("href") == approval_url
    snap(browser, screenshots / "7-waiting-for-the-bank.png")
    browser.execute_script("window.notReloaded = true;")

    approved = httpx.post(approval_url, data={"outcome": "authenticated"})  # the other device
    assert approved.status_code == 303, approved.text
    assert shown_when_terminal(browser) == ("succeeded", "", "7.25 EUR")
    assert browser.execute_script("return window.notReloaded;") is True
    assert not browser.find_element(By.ID, "continue-link").is_displayed()
    assert api.get(f"/v1/payments/{payment_id}").json()["status"] == "succeeded"


def start_checkout(
    browser: WebDriver, demo_url: str, amount: str, method: str, shot: Path | None = None
) -> None:
    """On the demo page: type the amount, pick the method, press Deposit."""
    browser.get(demo_url)
    field = browser.find_element(By.ID, "amount")
    field.clear()
    field.send_keys(amount)
    browser.find_element(By.CSS_SELECTOR, f'input[value="{method}"]').click()
    if shot is not None:
        snap(browser, shot)
    browser.find_element(By.ID, "pay").click()


def on_authentication_page(browser: WebDriver, title: str, amount: str) -> None:
    """Wait for the sandbox PSP's page; it names the deposit's amount."""
    WebDriverWait(browser, WAIT_SECONDS).until(expected_conditions.url_contains("/authenticate/"))
    assert browser.find_element(By.TAG_NAME, "h1").text == title
    assert amount in browser.find_element(By.TAG_NAME, "body").text


def answer(browser: WebDriver, demo_url: str, outcome: str) -> str:
    """Press Authenticate or Fail; back on the demo page, the deposit's id from its URL."""
    browser.find_element(By.CSS_SELECTOR, f'button[value="{outcome}"]').click()
    WebDriverWait(browser, WAIT_SECONDS).until(
        expected_conditions.url_contains(f"{demo_url}/?payment_id=")
    )
    [payment_id] = parse_qs(urlsplit(browser.current_url).query)["payment_id"]
    return payment_id


def shown_when_terminal(browser: WebDriver) -> tuple[str, str, str]:
    """Status, failure code and balance the page shows once the status is terminal."""
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda driver: driver.find_element(By.ID, "status").text in TERMINAL
    )
    text = [browser.find_element(By.ID, i).text for i in ("status", "failure-code", "balance")]
    return text[0], text[1], text[2]


def balance(api: httpx.Client, customer_id: str) -> dict[str, int]:
    """The customer's EUR balance through the API (zeros when they have none)."""
    for entry in api.get(f"/v1/customers/{customer_id}/balances").json()["data"]:
        if entry["currency"] == "EUR":
            return {k: entry[k] for k in ("posted", "held", "available")}
    return {"posted": 0, "held": 0, "available": 0}


def snap(browser: WebDriver, path: Path) -> None:
    """The window as the person sees it, as a PNG."""
    assert browser.save_screenshot(str(path)), path
