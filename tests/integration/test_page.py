"""The upload page in a real headless Chromium (Debian's chromium and chromium-driver, driven by Selenium) against
the live stack: a key, twenty files of every kind, progress, final statuses as the API has them, thumbnails, the
copy not sent twice, human reasons; and a reload in the middle of a multipart upload, resumed without sending a
part twice. A failing test leaves a screenshot in photopipe-bench/page-failures/."""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from photopipe import samples
from photopipe.apikeys import ApiKeys
from photopipe.media import MediaReader
from photopipe.soak import follow, upload_bytes
from photopipe.stack import Stack
from photopipe.upload import ApiClient
from photopipe_core.models import Status
from photopipe_infra.launcher import EmbeddedLocalStack
from tests import corpus

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "photopipe-bench" / "page-failures"
FINISHED = {"done", "skipped", "not-image", "error", "cancelled"}


@pytest.fixture
def browser(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("Chromium is not installed: `make test` installs Debian's chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1100,1400",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_script_timeout(120)
    failed_before = request.session.testsfailed
    yield driver
    if request.session.testsfailed > failed_before:  # this test's failure is counted before its teardown
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / f"{request.node.name}.png"))
    driver.quit()


def page_url(stack: Stack) -> str:
    """The page as a browser opens it, by another name of this machine than the one presigned URLs use: every
    PUT to storage is then cross-origin, as on AWS, and needs the bucket's CORS."""
    return stack.outputs.ApiUrl.replace("//localhost:", "//127.0.0.1:") + "/"


def wait(driver: WebDriver, condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what} did not happen within {timeout:.0f} s: files {rows(driver)}, library {tiles(driver)}"
            )
        time.sleep(0.25)


def rows(driver: WebDriver) -> list[dict[str, str]]:
    script = """
        return [...document.querySelectorAll('#files-list li')].map((row) => ({
          name: row.dataset.name, phase: row.dataset.phase, status: row.dataset.status,
          media_id: row.dataset.mediaId, text: row.querySelector('span:last-of-type .status')?.textContent ?? '',
          thumb: row.querySelector('img.thumb')?.naturalWidth ?? 0,
        }));
    """
    found: list[dict[str, str]] = driver.execute_script(script)
    return found


def thumb_width(driver: WebDriver, name: str) -> int:
    rows_by_name = {row["name"]: row for row in rows(driver)}
    return int(rows_by_name[name]["thumb"])


def open_with_key(driver: WebDriver, stack: Stack, key: str) -> None:
    driver.get(page_url(stack))
    field = wait(driver, lambda: driver.find_element(By.ID, "key"), 30, "the key field")
    field.send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
    wait(driver, lambda: "library" in driver.find_element(By.ID, "who").text, 30, "the owner's name")


def add_files(driver: WebDriver, paths: list[Path]) -> None:
    driver.find_element(By.ID, "files").send_keys("\n".join(str(path) for path in paths))


def big_png(seed: int) -> bytes:
    """About 40 MB of noise as a PNG (it does not compress): over the multipart threshold, under the upload limit."""
    noise = random.Random(seed).randbytes(3650 * 3650 * 3)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (3650, 3650), noise).save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


def media(stack: Stack, key: str, media_id: str) -> dict[str, Any]:
    response = requests.get(f"{stack.outputs.ApiUrl}/v1/media/{media_id}", headers={"x-api-key": key}, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def twenty_files(folder: Path, seed: int) -> list[Path]:
    files: dict[str, bytes] = {
        f"IMG_{n:04d}.jpg": samples.jpeg_bytes(samples.photo(4000, 3000, seed=seed + n)) for n in range(14)
    }
    files["IMG_0100.HEIC"] = corpus.heic(samples.photo(1200, 900, seed=seed + 100))
    alpha = samples.photo(800, 600, seed=seed + 101).convert("RGBA")
    alpha.putalpha(128)
    buffer = io.BytesIO()
    alpha.save(buffer, "PNG")
    files["logo with alpha.png"] = buffer.getvalue()
    whole = samples.jpeg_bytes(samples.photo(1600, 1200, seed=seed + 102))
    files["cut short.jpg"] = whole[: len(whole) // 3]
    files["notes.jpg"] = b"Shopping list: milk, eggs, film for the camera.\n" * 20
    files["IMG_0000 copy.jpg"] = files["IMG_0000.jpg"]
    files["panorama.png"] = big_png(seed)
    for name, body in files.items():
        (folder / name).write_bytes(body)
    return [folder / name for name in files]


def send_and_watch(driver: WebDriver, timeout: float) -> list[float]:
    """Start sending what the page holds; the overall bar's fraction, sampled until every row has finished."""
    driver.find_element(By.ID, "start").click()
    fractions = []
    deadline = time.monotonic() + timeout
    while not all(row["phase"] in FINISHED for row in rows(driver)):
        assert time.monotonic() < deadline, rows(driver)
        value, total = driver.execute_script(
            "const bar = document.getElementById('overall-bytes'); return [bar.value, bar.max];"
        )
        fractions.append(value / total)
        time.sleep(0.2)
    return fractions


def test_twenty_files_dropped_on_the_page_each_end_as_the_api_says(
    stack: Stack, operator_key: str, browser: WebDriver, tmp_path: Path
) -> None:
    # Given twenty files: 12 MP photos, an iPhone-style HEIC, a PNG with alpha, a truncated JPEG, text named
    # .jpg, an exact copy of one photo, and one of 40 MB (multipart)
    paths = twenty_files(tmp_path, seed=time.time_ns() % 10**6)

    # When they are added on the page and sent
    open_with_key(browser, stack, operator_key)
    add_files(browser, paths)
    wait(browser, lambda: browser.find_element(By.ID, "start").is_enabled(), 120, "the files checked")
    summary = browser.find_element(By.ID, "summary").text
    assert summary.startswith("18 photo(s)"), summary  # the text file and the copy are not among them
    sent_fractions = send_and_watch(browser, timeout=900)

    # Then progress was shown along the way
    assert any(0 < fraction < 1 for fraction in sent_fractions), sent_fractions[:50]
    assert int(browser.execute_script("return document.body.dataset.progressUpdates")) > 40
    shown = {row["name"]: row for row in rows(browser)}
    assert len(shown) == 20
    # and every final status is the API's, with a thumbnail for each photo
    for name, row in shown.items():
        if name in {"notes.jpg", "IMG_0000 copy.jpg"}:
            continue
        assert row["phase"] == "done", row
        api = media(stack, operator_key, row["media_id"])
        assert row["status"] == api["status"], (row, api["status"])
        if api["status"] == "READY":  # its thumbnail loads: naturalWidth
            wait(browser, lambda name=name: thumb_width(browser, name) > 0, 30, f"the thumbnail of {name}")
    ready = {name for name, row in shown.items() if row["status"] == "READY"}
    assert ready == {*(f"IMG_{n:04d}.jpg" for n in range(14)), "IMG_0100.HEIC", "logo with alpha.png", "panorama.png"}
    # the copy was not sent, and says of which photo it is a copy
    assert shown["IMG_0000 copy.jpg"]["phase"] == "skipped"
    assert "IMG_0000.jpg" in shown["IMG_0000 copy.jpg"]["text"]
    # reasons are sentences a person reads, not codes
    refused = media(stack, operator_key, shown["cut short.jpg"]["media_id"])
    assert refused["status"] == "REJECTED" and refused["reason"] == "corrupt"
    assert shown["cut short.jpg"]["text"] == f"Refused: {refused['reason_detail']}"
    assert re.fullmatch(r"Not sent: its content is not a photo .+\.", shown["notes.jpg"]["text"])
    # and the library shows them
    wait(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR, "#gallery img")) >= 17, 60, "the gallery")
    if os.environ.get("PHOTOPIPE_PAGE_SCREENSHOT"):  # the README's picture: the last rows, in 64 colours
        browser.execute_script("document.querySelector('#files-list li:nth-child(12)').scrollIntoView()")
        shot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
        shot.quantize(64).save(os.environ["PHOTOPIPE_PAGE_SCREENSHOT"], optimize=True)
    # a photo of the library opens its variants, and Escape closes them
    browser.find_element(By.CSS_SELECTOR, "#gallery button").click()
    wait(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR, "#viewer-variants a")) == 3, 30, "the variants")
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    wait(browser, lambda: not browser.execute_script("return document.getElementById('viewer').open"), 10, "closed")
    # and at a phone's width nothing runs off the side
    browser.set_window_size(390, 844)
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


def upload_parts(localstack: EmbeddedLocalStack) -> int:
    """How many parts of multipart uploads S3 has taken since this LocalStack started (its request log)."""
    return localstack.log_file.read_text(errors="replace").count("s3.UploadPart => 200")


def test_a_reload_in_the_middle_of_a_multipart_upload_resumes_without_sending_a_part_twice(
    stack: Stack, localstack: EmbeddedLocalStack, operator_key: str, browser: WebDriver, tmp_path: Path
) -> None:
    # Given a 40 MB photo on its way, reloaded once S3 holds some of its parts but not all
    path = tmp_path / "big panorama.png"
    path.write_bytes(big_png(time.time_ns() % 10**6))
    parts_before = upload_parts(localstack)
    open_with_key(browser, stack, operator_key)
    add_files(browser, [path])
    wait(browser, lambda: browser.find_element(By.ID, "start").is_enabled(), 120, "the file checked")
    browser.find_element(By.ID, "start").click()
    wait(browser, lambda: upload_parts(localstack) - parts_before >= 1, 120, "a first part stored")
    browser.refresh()

    # When the same file is added again after the reload (the key is still the tab's)
    wait(browser, lambda: browser.find_element(By.ID, "interrupted").is_displayed(), 30, "the interrupted list")
    assert "big panorama.png" in browser.find_element(By.ID, "interrupted-list").text
    sent_before_reload = upload_parts(localstack) - parts_before
    add_files(browser, [path])
    wait(browser, lambda: browser.find_element(By.ID, "start").is_enabled(), 120, "the file checked again")
    assert "where it stopped" in rows(browser)[-1]["text"]
    browser.find_element(By.ID, "start").click()
    row = wait(
        browser,
        lambda: next((r for r in rows(browser) if r["name"] == path.name and r["phase"] in FINISHED), None),
        600,
        "the photo's final status",
    )

    # Then it ends READY, and S3 took each part once: those sent before the reload were not sent again
    assert row["status"] == "READY", row
    finished = media(stack, operator_key, row["media_id"])
    part_size = 8 * 1024 * 1024
    parts = -(-finished["source"]["bytes"] // part_size)
    assert 1 <= sent_before_reload < parts  # the reload came in the middle
    assert upload_parts(localstack) - parts_before == parts, (sent_before_reload, parts)
    assert finished["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_storage_out_of_reach_for_a_while_and_a_failed_photo_retried_from_the_page(
    stack: Stack,
    operator_key: str,
    browser: WebDriver,
    tmp_path: Path,
    function_name: Callable[[str], str],
    throttled: Callable[[str], None],
) -> None:
    # Given two photos whose PUTs fail for a few seconds (storage out of reach: every presigned URL blocked), then
    # go through
    paths = []
    for index in range(2):
        path = tmp_path / f"unreachable {index}.jpg"
        path.write_bytes(samples.jpeg_bytes(samples.photo(1200, 900, seed=time.time_ns() % 10**6 + index)))
        paths.append(path)
    open_with_key(browser, stack, operator_key)
    add_files(browser, paths)
    wait(browser, lambda: browser.find_element(By.ID, "start").is_enabled(), 60, "the files checked")
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*X-Amz-Signature*"]})
    browser.find_element(By.ID, "start").click()
    time.sleep(4)  # the first PUTs, and the next after a backoff, fail (then fresh URLs are asked for)
    assert all(row["phase"] == "sending" for row in rows(browser)), rows(browser)
    browser.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})

    # Then both are sent once storage answers again, and end READY with their own bytes
    done = wait(browser, lambda: all(r["phase"] in FINISHED for r in rows(browser)) and rows(browser), 180, "both")
    assert [row["status"] for row in done] == ["READY", "READY"], done
    by_name = {row["name"]: row for row in done}
    for path in paths:
        sent = media(stack, operator_key, by_name[path.name]["media_id"])
        assert sent["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()

    # Given a photo whose last step cannot run (its function throttled): FAILED, with a Retry button
    throttle_finalize = function_name("FinalizeFunction")
    throttled(throttle_finalize)
    failing = tmp_path / "fails once.jpg"
    failing.write_bytes(samples.jpeg_bytes(samples.photo(1000, 800, seed=time.time_ns() % 10**6 + 7)))
    add_files(browser, [failing])
    wait(browser, lambda: browser.find_element(By.ID, "start").is_enabled(), 60, "the file checked")
    browser.find_element(By.ID, "start").click()
    failed = wait(
        browser,
        lambda: next((r for r in rows(browser) if r["name"] == failing.name and r["status"] == "FAILED"), None),
        240,
        "the photo FAILED",
    )
    assert failed["text"].startswith("Failed: "), failed

    # When the cause is gone and Retry is pressed
    aws_lambda = stack.client("lambda")
    aws_lambda.delete_function_concurrency(FunctionName=throttle_finalize)
    browser.find_element(By.CSS_SELECTOR, f"button[aria-label='Retry {failing.name}']").click()

    # Then it runs again, to READY, with a thumbnail
    ready = wait(
        browser,
        lambda: next((r for r in rows(browser) if r["name"] == failing.name and r["status"] == "READY"), None),
        240,
        "the photo READY after Retry",
    )
    assert ready["media_id"] == failed["media_id"]
    wait(browser, lambda: thumb_width(browser, failing.name) > 0, 30, "its thumbnail")


# Every answer to a list of photos (GET /v1/media?status=...) reaches the page 3 s late; window.lateAnswers counts
# those that have reached it.
SLOW_PHOTO_LISTS = """
    window.lateAnswers = 0;
    const answer = window.fetch.bind(window);
    window.fetch = async (url, options) => {
      const response = await answer(url, options);
      if (String(url).includes("/v1/media?status=")) {
        await new Promise((done) => setTimeout(done, 3000));
        window.lateAnswers += 1;
      }
      return response;
    };
"""


def dated_photo(seed: int, taken: str) -> bytes:
    exif = Image.Exif()
    exif.get_ifd(samples.EXIF_IFD)[samples.EXIF_DATETIME_ORIGINAL] = taken
    return samples.jpeg_bytes(samples.photo(640, 480, seed=seed), exif=exif)


def tiles(driver: WebDriver) -> list[dict[str, Any]]:
    script = """
        return [...document.querySelectorAll('#gallery li button')].map((tile) => ({
          label: tile.getAttribute('aria-label'), text: tile.innerText,
          image: tile.querySelector('img:not([hidden])')?.naturalWidth ?? 0,
        }));
    """
    found: list[dict[str, Any]] = driver.execute_script(script)
    return found


def test_the_library_shows_the_owners_albums_and_each_albums_photos(
    browser: WebDriver, stack: Stack, api_keys: ApiKeys
) -> None:
    # Given an owner with two photos taken one day and one the next
    key = api_keys.create(f"albums-{time.time_ns()}")
    api = ApiClient(stack.outputs.ApiUrl, key.value)
    taken = {"1.jpg": "2026:05:01 09:00:00", "2.jpg": "2026:05:01 17:30:00", "3.jpg": "2026:05:02 10:00:00"}
    sent = [upload_bytes(api, name, dated_photo(n, when)) for n, (name, when) in enumerate(taken.items())]
    assert set(follow(MediaReader(stack), sent, timeout=180).values()) == {Status.READY}
    albums = api.albums()
    assert sorted(album["count"] for album in albums) == [1, 2]

    # When they open their library's albums, while the answer for the view the page opened with (its photos) is
    # slow, as under load, and arrives after the albums' answer
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": SLOW_PHOTO_LISTS})
    open_with_key(browser, stack, key.value)
    Select(browser.find_element(By.ID, "gallery-status")).select_by_value("ALBUMS")

    # Then each album is there by its title, with its photo count and its cover
    def album_tiles() -> list[dict[str, Any]]:
        shown = tiles(browser)
        labels = sorted(str(tile["label"]) for tile in shown)
        wanted = sorted(f"Open album {album['title']}" for album in albums)
        return shown if labels == wanted and all(tile["image"] > 0 for tile in shown) else []

    shown = wait(browser, album_tiles, 60, "the album tiles with their covers")
    wait(browser, lambda: browser.execute_script("return window.lateAnswers") > 0, 30, "the photos' late answer")
    shown = wait(browser, album_tiles, 1, "the album tiles, still there after the late answer")
    by_label = {tile["label"]: tile["text"] for tile in shown}
    for album in albums:
        count = album["count"]
        assert f"{count} photo{'s' if count > 1 else ''}" in by_label[f"Open album {album['title']}"]

    # And opening the two-photo album shows its two photos, each with its image; "All albums" goes back
    bigger = next(album for album in albums if album["count"] == 2)
    browser.find_element(By.CSS_SELECTOR, f"#gallery button[aria-label='Open album {bigger['title']}']").click()

    def album_photos() -> list[dict[str, Any]]:
        shown = tiles(browser)
        photos_only = all(not str(t["label"]).startswith("Open album") and t["image"] > 0 for t in shown)
        return shown if len(shown) == 2 and photos_only else []

    photos = wait(browser, album_photos, 60, "the album's photos")
    assert sorted(str(tile["label"]) for tile in photos) == ["Open 1.jpg", "Open 2.jpg"]
    assert browser.find_element(By.ID, "album-title").text == f"{bigger['title']} · 2 photos"
    browser.find_element(By.ID, "all-albums").click()
    wait(browser, album_tiles, 60, "the album tiles again")
    assert not browser.find_element(By.ID, "all-albums").is_displayed()
