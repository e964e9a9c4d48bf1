"""`keyface serve`'s page driven in a real browser (Debian's Chromium through Playwright): enrol, identify,
rename, remove, hostile names shown as text, and the token taken from the address and kept out of it.

Set KEYFACE_SCREENSHOT=1 to write docs/serve-page.png (the README's picture) after identifying.
"""
from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "recognition" / "demo"
CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "page-test-token-0123456789"
HOSTILE = "<img src=x onerror=window.__pwned=1>"

if not CHROMIUM.is_file():
    pytest.skip(f"the browser test needs Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="the browser test needs Playwright (pip install playwright)")
expect = sync_api.expect


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The real server, in this process, on a free loopback port, over a fresh gallery; its base address."""
    import uvicorn
    from keyface.recognition.server.app import build_app
    tmp = tmp_path_factory.mktemp("serve")
    (tmp / "models").mkdir()  # an empty models directory: the shipped weights are used
    app = build_app("dlib-resnet", "blazeface", tmp / "models", tmp / "g.db", TOKEN, False, 20_000_000)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    """A fresh tab that records script errors and every address it asks for."""
    context = browser.new_context(viewport={"width": 900, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.errors, page.requests = [], []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("request", lambda request: page.requests.append(request.url))
    yield page
    context.close()


def gallery_photos(person: str) -> list[str]:
    return [str(p) for p in sorted((DEMO / "gallery" / person).glob("*.jpg"))]


def person_row(page, name: str):
    return page.locator("#people [data-testid=person]").filter(
        has=page.get_by_test_id("person-name").get_by_text(name, exact=True))


def enrol(page, name: str, photos: list[str]) -> None:
    page.fill("#enrol-name", name)
    page.set_input_files("#enrol-photos", photos)
    page.click("#enrol-button")
    expect(page.locator("#enrol-result [data-testid=enrol-added]")).to_have_text(
        f"Added {len(photos)} photo{'s' if len(photos) != 1 else ''} of {name}.")
    expect(page.locator("#enrol-result [data-testid=enrol-errors]")).to_have_count(0)
    expect(person_row(page, name).get_by_test_id("person-count")).to_have_text(
        f"{len(photos)} photo{'s' if len(photos) != 1 else ''}")


def test_enrol_identify_rename_remove_through_the_page(page, server):
    page.goto(f"{server}/#token={TOKEN}")
    expect(page.locator("#server-info")).to_contain_text("embedder dlib-resnet")
    assert "token" not in page.url  # taken out of the address bar, kept for the tab
    assert page.evaluate("sessionStorage.getItem('keyface-token')") == TOKEN
    expect(page.locator("#token-notice")).to_be_hidden()
    expect(page.locator("#people-empty")).to_be_visible()

    salma, gordon = gallery_photos("Salma Hayek"), gallery_photos("Gordon Brown")
    assert len(salma) == 5 and len(gordon) == 5  # one face in each photo
    enrol(page, "Salma Hayek", salma)
    enrol(page, "Gordon Brown", gordon)
    expect(page.locator("#server-info")).to_contain_text("2 people, 10 photos")
    thumbnail = person_row(page, "Salma Hayek").locator("img")
    expect(thumbnail).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function("[...document.querySelectorAll('#people img')].every(i => i.complete && i.naturalWidth)")

    page.set_input_files("#identify-photo", str(DEMO / "probes" / "Salma_Hayek_0006.jpg"))
    faces = page.locator("#identify-faces li")
    expect(faces).to_have_count(1)
    expect(faces.first).to_have_text(re.compile(r"^1: Salma Hayek \(distance 0\.\d{3}\)$"))
    expect(page.locator("#identify-canvas")).to_be_visible()

    # three faces: numbered boxes, labels on the canvas and clear of each other, the list in the same order
    page.set_input_files("#identify-photo", str(DEMO / "probes" / "Gordon_Brown_0006.jpg"))
    expect(faces).to_have_count(3)
    # numbered left to right (by the box's left edge): the two in the background come first
    expect(faces).to_have_text(["1: unknown", "2: unknown", re.compile(r"^3: Gordon Brown \(distance 0\.\d{3}\)$")])
    canvas = page.locator("#identify-canvas")
    expect(canvas).to_have_attribute("data-labels", re.compile(r"^\[\["))
    labels = json.loads(canvas.get_attribute("data-labels"))
    width, height = canvas.evaluate("c => [c.clientWidth, c.clientHeight]")
    assert len(labels) == 3 and width > 300
    for i, (x0, y0, x1, y1) in enumerate(labels):
        assert 0 <= x0 < x1 <= width + 0.5 and 0 <= y0 < y1 <= height + 0.5, labels
        for a0, b0, a1, b1 in labels[i + 1:]:
            assert x1 <= a0 or a1 <= x0 or y1 <= b0 or b1 <= y0, labels
    if os.environ.get("KEYFACE_SCREENSHOT"):
        (REPO / "docs").mkdir(exist_ok=True)
        page.screenshot(path=str(REPO / "docs" / "serve-page.png"), full_page=True)

    page.set_input_files("#identify-photo", str(DEMO / "probes" / "AJ_Lamas_0001.jpg"))
    expect(faces).to_have_count(1)
    expect(faces.first).to_have_text("1: unknown")

    row = person_row(page, "Salma Hayek")
    row.get_by_role("button", name="Rename Salma Hayek").click()
    row.get_by_test_id("rename-input").fill("Salma H.")
    row.get_by_test_id("rename-save").click()
    expect(person_row(page, "Salma H.")).to_have_count(1)
    expect(person_row(page, "Salma Hayek")).to_have_count(0)
    expect(person_row(page, "Salma H.").get_by_test_id("person-count")).to_have_text("5 photos")

    page.once("dialog", lambda dialog: dialog.accept())
    person_row(page, "Gordon Brown").get_by_role("button", name="Remove Gordon Brown").click()
    expect(person_row(page, "Gordon Brown")).to_have_count(0)
    expect(page.locator("#people [data-testid=person-name]")).to_have_text(["Salma H."])
    expect(page.locator("#server-info")).to_contain_text("1 person, 5 photos")

    # a name that is markup is shown as text, never run
    enrol(page, HOSTILE, [str(DEMO / "gallery" / "Renee Zellweger" / "Renee_Zellweger_0001.jpg")])
    expect(page.locator("#enrol-result")).to_contain_text(f"of {HOSTILE}.")
    names = page.locator("#people [data-testid=person-name]").all_text_contents()
    assert sorted(names) == sorted([HOSTILE, "Salma H."])
    page.set_input_files("#identify-photo", str(DEMO / "probes" / "Renee_Zellweger_0006.jpg"))
    expect(faces.first).to_have_text(re.compile(r"^1: " + re.escape(HOSTILE) + r" \(distance 0\.\d{3}\)$"))
    page.wait_for_timeout(300)  # time for any injected handler to fire
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src=x]").count() == 0

    assert page.errors == []
    assert all(url.startswith((server + "/", "blob:")) for url in page.requests), page.requests


def test_without_the_token_the_page_reads_and_asks_for_it_to_change(page, server):
    page.goto(f"{server}/")
    notice = page.locator("#token-notice")
    expect(notice).to_be_visible()
    expect(page.locator("#server-info")).to_contain_text("embedder dlib-resnet")
    page.fill("#enrol-name", "Nobody")
    page.set_input_files("#enrol-photos", gallery_photos("Renee Zellweger")[:1])
    page.click("#enrol-button")
    expect(page.locator("#message")).to_contain_text("a valid API token is required")

    page.fill("#token-input", TOKEN)
    page.click("#token-button")
    expect(notice).to_be_hidden()
    expect(page.locator("#message")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('keyface-token')") == TOKEN
    assert page.errors == []


def enrol_over_http(page, server, name: str, photo: str) -> None:
    """One photo of a person enrolled through the API (not the page), unless that person is already there."""
    path = Path(photo)
    made = page.request.post(f"{server}/api/people", headers={"Authorization": f"Bearer {TOKEN}"},
                             multipart={"name": name,
                                        "photos": {"name": path.name, "mimeType": "image/jpeg",
                                                   "buffer": path.read_bytes()}})
    assert made.ok or "already enrolled" in made.text(), made.text()


def thumbnails_asked_for(page) -> list[str]:
    return [url for url in page.requests if url.endswith("/thumbnail")]


def wait_for_thumbnails(page) -> None:
    page.wait_for_function("[...document.querySelectorAll('#people img')].every(i => i.complete && i.naturalWidth)")


def test_a_late_identify_answer_does_not_replace_a_newer_one(page, server):
    enrol_over_http(page, server, "Tom Cruise", gallery_photos("Tom Cruise")[0])
    page.goto(f"{server}/#token={TOKEN}")
    expect(page.locator("#server-info")).to_contain_text("embedder dlib-resnet")
    held = []  # the first photo's request, answered only after the second photo's

    def hold_first(route):
        if held:
            route.continue_()
        else:
            held.append(route)
    page.route("**/api/identify", hold_first)
    page.set_input_files("#identify-photo", str(DEMO / "probes" / "AJ_Lamas_0001.jpg"))
    deadline = time.monotonic() + 20
    while not held:
        assert time.monotonic() < deadline, "the first identify request never came"
        page.wait_for_timeout(20)
    page.set_input_files("#identify-photo", str(DEMO / "probes" / "Tom_Cruise_0006.jpg"))
    status, faces, canvas = page.locator("#identify-status"), page.locator("#identify-faces li"), \
        page.locator("#identify-canvas")
    expect(status).to_have_text("1 face in Tom_Cruise_0006.jpg.")
    expect(faces).to_have_text([re.compile(r"^1: Tom Cruise \(distance 0\.\d{3}\)$")])
    drawn = canvas.evaluate("c => c.toDataURL()")

    with page.expect_response("**/api/identify") as late:
        held[0].continue_()
    late.value.finished()
    page.wait_for_timeout(500)  # time for the page to handle the late answer, had it been going to
    expect(status).to_have_text("1 face in Tom_Cruise_0006.jpg.")
    expect(faces).to_have_text([re.compile(r"^1: Tom Cruise \(distance 0\.\d{3}\)$")])
    assert canvas.evaluate("c => c.toDataURL()") == drawn
    expect(page.locator("#message")).to_be_hidden()
    assert page.errors == []


def test_a_refresh_fetches_only_the_thumbnails_it_does_not_have(page, server):
    enrol_over_http(page, server, "Pierce Brosnan", gallery_photos("Pierce Brosnan")[0])
    page.goto(f"{server}/#token={TOKEN}")
    expect(person_row(page, "Pierce Brosnan")).to_have_count(1)
    wait_for_thumbnails(page)
    rows = page.locator("#people [data-testid=person]").count()
    assert len(thumbnails_asked_for(page)) == rows  # the first list: one each

    before = len(thumbnails_asked_for(page))
    enrol(page, "Nancy Pelosi", gallery_photos("Nancy Pelosi")[:2])
    wait_for_thumbnails(page)
    assert [u.removeprefix(server) for u in thumbnails_asked_for(page)[before:]] == [
        "/api/people/Nancy%20Pelosi/thumbnail"]

    before = len(thumbnails_asked_for(page))  # a renamed person's face is fetched under the new name
    row = person_row(page, "Nancy Pelosi")
    row.get_by_role("button", name="Rename Nancy Pelosi").click()
    row.get_by_test_id("rename-input").fill("Nancy P.")
    row.get_by_test_id("rename-save").click()
    expect(person_row(page, "Nancy P.")).to_have_count(1)
    wait_for_thumbnails(page)
    assert [u.removeprefix(server) for u in thumbnails_asked_for(page)[before:]] == [
        "/api/people/Nancy%20P./thumbnail"]

    before = len(thumbnails_asked_for(page))  # removing someone fetches nothing
    page.once("dialog", lambda dialog: dialog.accept())
    person_row(page, "Pierce Brosnan").get_by_role("button", name="Remove Pierce Brosnan").click()
    expect(person_row(page, "Pierce Brosnan")).to_have_count(0)
    wait_for_thumbnails(page)
    expect(page.locator("#server-info")).not_to_contain_text("Pierce")  # the refresh is done
    assert thumbnails_asked_for(page)[before:] == []
    assert page.errors == []


def test_the_page_can_enrol_the_largest_face_of_photos_with_several(page, server):
    page.goto(f"{server}/#token={TOKEN}")
    expect(page.locator("#server-info")).to_contain_text("embedder dlib-resnet")
    page.check("#enrol-largest")
    enrol(page, "Condoleezza Rice", gallery_photos("Condoleezza Rice"))  # two of them show several faces
    expect(page.locator("#enrol-largest")).not_to_be_checked()  # a choice for one enrolment, not kept
    assert page.errors == []


def test_the_page_verifies_two_photos(page, server):
    page.goto(f"{server}/")  # verifying changes nothing: no token needed
    expect(page.locator("#server-info")).to_contain_text("embedder dlib-resnet")
    result = page.get_by_test_id("verify-result")
    page.set_input_files("#verify-a", str(DEMO / "probes" / "Salma_Hayek_0006.jpg"))
    page.set_input_files("#verify-b", str(DEMO / "probes" / "Salma_Hayek_0007.jpg"))
    page.click("#verify-run")
    expect(result).to_have_text(re.compile(r"^Same person \(distance 0\.\d{3}, threshold \d\.\d{3}\)$"))

    page.set_input_files("#verify-b", str(DEMO / "probes" / "Tom_Cruise_0006.jpg"))
    page.click("#verify-run")
    expect(result).to_have_text(re.compile(r"^Different people \(distance \d\.\d{3}, threshold \d\.\d{3}\)$"))
    page.set_input_files("#verify-a", str(DEMO / "gallery" / "Condoleezza Rice" / "Condoleezza_Rice_0004.jpg"))
    page.click("#verify-run")  # two people in it: refused, naming the file
    expect(result).to_have_text(re.compile(r"^Condoleezza_Rice_0004\.jpg: 2 faces found"))
    page.check("#verify-largest")
    page.click("#verify-run")
    expect(result).to_have_text(re.compile(r"^Different people \(distance"))
    assert page.errors == []
    assert all(url.startswith((server + "/", "blob:")) for url in page.requests), page.requests
