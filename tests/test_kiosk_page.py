"""The booth's screen in a real headless Chromium against the real daemon, broker and HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from edge.imei import InvalidImeiError, validate_imei
from tests.booth_support import REVIEW_EVERY_CRACK, VALID_IMEI, DaemonProcess, api_base, free_port, write_config
from tests.browser_support import chromium, screenshot, viewport, wait_until
from tests.mosquitto_broker import Collector, MosquittoBroker

PREFIX = "vision-grader/test-booth"
KEY = "open-sesame"  # the technician's, not the clients'
IMEI_CASES = [
    VALID_IMEI, "356938035643809", "490154203237519", "356938035643800", "12345678901234", "1234567890123456",
    "49015420323751a", "", " 490154203237518", "000000000000000", "123456789012345", "4901542032375１8",
]  # fmt: skip


def booth_reason(imei: str, policy: str) -> str | None:
    try:
        validate_imei(imei, luhn=policy == "luhn")
    except InvalidImeiError as exc:
        return str(exc)
    return None


def by_id(driver: WebDriver, element_id: str) -> WebElement:
    return driver.find_element(By.ID, element_id)


def state_item(driver: WebDriver, name: str) -> WebElement:
    """Found anew each time: the state panel is redrawn on every refresh."""
    return driver.find_element(By.CSS_SELECTOR, f'#tech-state dd[data-item="{name}"]')


@pytest.fixture
def broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker() as running:
        yield running


def start_daemon(tmp_path: Path, images: Path, broker: MosquittoBroker, extra: str = "") -> tuple[DaemonProcess, str]:
    mqtt = f'host = "127.0.0.1"\nport = {broker.port}\nreconnect_min_s = 1\nreconnect_max_s = 2'
    config = write_config(tmp_path / "cfg", images, mqtt=mqtt, extra=extra)
    daemon = DaemonProcess(config).start()
    daemon.wait_ready()
    return daemon, api_base(config)


def type_imei(driver: WebDriver, imei: str) -> None:
    field = by_id(driver, "imei")
    field.clear()
    field.send_keys(imei)


def test_customer_grades_a_phone_and_sees_grade_sections_and_overlays(
    tmp_path: Path, booth_images: Path, broker: MosquittoBroker
) -> None:
    collector = Collector(broker, f"{PREFIX}/sessions/#")
    daemon, base = start_daemon(tmp_path, booth_images, broker)
    try:
        with chromium() as driver:
            viewport(driver, 800, 480)
            driver.get(base + "/")
            wait_until(driver, lambda d: "test-booth" in by_id(d, "booth-name").text)

            for case in IMEI_CASES:
                for policy in ("luhn", "digits"):
                    assert driver.execute_script("return BoothImei.check(arguments[0], arguments[1])", case, policy) \
                        == booth_reason(case, policy), (case, policy)  # fmt: skip

            type_imei(driver, "490154203237519")
            assert by_id(driver, "imei-hint").text == "imei check digit (Luhn) is wrong"
            assert not by_id(driver, "grade").is_enabled()
            type_imei(driver, "4901542032")
            assert by_id(driver, "imei-hint").text == "imei must be exactly 15 digits"
            by_id(driver, "imei").send_keys("\n")
            assert httpx.get(f"{base}/api/sessions", timeout=30).json()["sessions"] == []

            type_imei(driver, "49 015420-323751 8")  # as printed on a box: spaces and dashes are not digits
            assert by_id(driver, "imei-hint").text == "IMEI is valid"
            type_imei(driver, VALID_IMEI)
            assert by_id(driver, "imei-hint").text == "IMEI is valid"
            by_id(driver, "grade").click()
            wait_until(driver, lambda d: by_id(d, "result").is_displayed())

            session = httpx.get(f"{base}/api/sessions", timeout=30).json()["sessions"][0]
            assert session["imei"] == VALID_IMEI and session["source"] == "kiosk"
            assert session["status"] == "graded", session["reason"]
            assert by_id(driver, "grade-letter").text == session["grade"]
            cards = driver.find_elements(By.CSS_SELECTOR, "#sections .section")
            assert [c.find_element(By.TAG_NAME, "h3").text.split("\n")[0].lower() for c in cards] == ["front", "back"]
            for card, name in zip(cards, ("front", "back"), strict=True):
                assert f"{session['result']['analysis'][name]['score']}/100" in card.text
            overlays = driver.find_elements(By.CSS_SELECTOR, "#sections img.zoomable")
            assert len(overlays) == len(session["result"]["overlays"]) >= 2
            loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
            wait_until(driver, lambda d: all(d.execute_script(loaded, o) for o in overlays))

            delivered = driver.find_element(By.CSS_SELECTOR, '#progress li[data-step="delivered"]')
            wait_until(driver, lambda d: delivered.get_attribute("class") == "done")
            assert collector.on(f"{PREFIX}/sessions/{session['sessionId']}")
            mirrored = driver.find_element(By.CSS_SELECTOR, '#progress li[data-step="mirrored"]')
            assert mirrored.get_attribute("class") == "off"

            driver.execute_script("window.scrollTo(0, 0)")
            small = screenshot(driver, "customer-800x480")
            viewport(driver, 1280, 800)
            large = screenshot(driver, "customer-1280x800")
            assert cv2.imread(str(small)).shape[:2] == (480, 800)
            assert cv2.imread(str(large)).shape[:2] == (800, 1280)

            overlays[0].click()
            wait_until(driver, lambda d: by_id(d, "zoom").is_displayed())
    finally:
        daemon.stop()
        collector.close()


def test_technician_confirms_a_review_and_the_decision_is_published(
    tmp_path: Path, cracked_booth_images: Path, broker: MosquittoBroker
) -> None:
    collector = Collector(broker, f"{PREFIX}/sessions/#")
    daemon, base = start_daemon(tmp_path, cracked_booth_images, broker, REVIEW_EVERY_CRACK)
    try:
        assert httpx.get(f"{base}/api/tech/state", timeout=30).status_code == 401
        with chromium() as driver:
            viewport(driver, 1280, 800)
            driver.get(base + "/")
            wait_until(driver, lambda d: "test-booth" in by_id(d, "booth-name").text)
            type_imei(driver, VALID_IMEI)
            by_id(driver, "grade").click()
            wait_until(driver, lambda d: by_id(d, "result").is_displayed())
            assert "technician will check" in by_id(driver, "result-text").text
            session = httpx.get(f"{base}/api/sessions", timeout=30).json()["sessions"][0]
            session_id, provisional = session["sessionId"], session["provisional_grade"]
            assert (session["status"], provisional) == ("review", "D")
            topic = f"{PREFIX}/sessions/{session_id}"
            assert collector.wait_for(lambda: collector.on(topic), 60)

            by_id(driver, "tech-toggle").click()
            by_id(driver, "tech-key").send_keys(KEY)
            by_id(driver, "tech-unlock").click()
            card = wait_until(driver, lambda d: d.find_element(By.CSS_SELECTOR, f'[data-session="{session_id}"]'))
            assert session["reason"] in card.text
            photos = card.find_elements(By.CSS_SELECTOR, "img.zoomable")
            assert len(photos) == len(session["images"])
            loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
            wait_until(driver, lambda d: all(d.execute_script(loaded, p) for p in photos))
            assert state_item(driver, "broker").text == "connected"
            model = state_item(driver, "model").text
            assert session["result"]["model"]["sha256"][:12] in model
            wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#sessions td"))
            screenshot(driver, "technician-1280x800")
            viewport(driver, 800, 480)
            screenshot(driver, "technician-800x480")

            decide = card.find_element(By.CSS_SELECTOR, "button.decide")
            assert decide.text == f"Confirm {provisional}"
            card.find_element(By.CSS_SELECTOR, 'input[aria-label="technician"]').send_keys("Sam")
            card.find_element(By.CSS_SELECTOR, 'input[aria-label="note"]').send_keys("crack seen by eye")
            decide.click()
            wait_until(driver, lambda d: "decided" in card.get_attribute("class"))
            assert card.text == f"Graded {provisional} by Sam"

            assert collector.wait_for(lambda: len(collector.on(topic)) == 2, 60), daemon.output()
            first, second = (json.loads(p) for p in collector.on(topic))
            assert first["status"] == "review" and first["grade"] is None
            assert second["sessionId"] == first["sessionId"] == session_id
            assert second["status"] == "graded" and second["grade"] == provisional
            assert second["provisional_grade"] == provisional
            assert second["reviewed_by"] == "Sam" and second["review_note"] == "crack seen by eye"
            view = httpx.get(f"{base}/api/sessions/{session_id}", timeout=30).json()
            assert (view["status"], view["grade"], view["reviewed_by"]) == ("graded", provisional, "Sam")
            assert view["result"]["review_note"] == "crack seen by eye"

            assert KEY not in driver.page_source and KEY not in driver.current_url

            broker.stop()
            wait_until(
                driver,
                lambda d: (state_item(d, "broker").text, state_item(d, "broker").get_attribute("class"))
                == ("DISCONNECTED", "bad"),
            )

            # Back to the customer's view: the decision reached the customer's screen, and the
            # technician's panel locked behind them, whether or not Lock was pressed.
            by_id(driver, "tech-toggle").click()
            wait_until(driver, lambda d: by_id(d, "grade-letter").text == provisional)
            assert by_id(driver, "result-text").text == "Your phone's grade"
            by_id(driver, "tech-toggle").click()
            assert by_id(driver, "unlock").is_displayed() and not by_id(driver, "tech-panels").is_displayed()
            assert driver.execute_script("return sessionStorage.getItem('booth-key')") is None
            by_id(driver, "tech-key").send_keys(KEY)
            by_id(driver, "tech-unlock").click()
            wait_until(driver, lambda d: by_id(d, "tech-panels").is_displayed())
            by_id(driver, "tech-lock").click()
            assert by_id(driver, "unlock").is_displayed() and not by_id(driver, "tech-panels").is_displayed()
    finally:
        daemon.stop()
        collector.close()


def test_a_result_the_store_system_cannot_take_yet_shows_as_queued_once_the_wait_is_over(
    tmp_path: Path, booth_images: Path
) -> None:
    # No broker listens on the port: the result waits in the booth's outbox.
    mqtt = f'host = "127.0.0.1"\nport = {free_port()}\nreconnect_min_s = 1\nreconnect_max_s = 2'
    daemon = DaemonProcess(write_config(tmp_path / "cfg", booth_images, mqtt=mqtt)).start()
    daemon.wait_ready()
    base = api_base(daemon.config)
    try:
        with chromium() as driver:
            viewport(driver, 800, 480)
            driver.get(base + "/")
            wait_until(driver, lambda d: "test-booth" in by_id(d, "booth-name").text)
            driver.execute_script("Kiosk.deliveryWaitMs = 5000")
            type_imei(driver, VALID_IMEI)
            by_id(driver, "grade").click()
            wait_until(driver, lambda d: by_id(d, "result").is_displayed())
            delivered = driver.find_element(By.CSS_SELECTOR, '#progress li[data-step="delivered"]')
            assert delivered.get_attribute("class") == "active"
            assert not by_id(driver, "progress-note").is_displayed()

            wait_until(driver, lambda d: delivered.get_attribute("class") == "queued")
            note = by_id(driver, "progress-note")
            assert note.text == "The result is kept on the booth and goes out as soon as the connection is back."
            session = httpx.get(f"{base}/api/sessions", timeout=30).json()["sessions"][0]
            assert (session["status"], session["delivery"]["mqtt"]) == ("graded", "pending")
    finally:
        daemon.stop()
