"""The search page in a real browser: headless Chromium driven by Playwright against the app on a loopback port.

It searches by words, by file picker, by drag-and-drop and by paste, follows "more like this", copies an
attribution, checks thumbnails stay crisp (pixelated, whole-number scale) and a phone has no sideways scroll, and
reads the about page and the error messages. Screenshots go to $OGASEARCH_TEST_OUTPUT (default test-output/).

Playwright downloads no browser here: it drives the system's Chromium (Debian `chromium`, which CI installs).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image
from webapp import SearchableData, build_searchable, serving, sprite

from ogasearch.ingest.canonical import canonicalize
from ogasearch.ingest.images import decode_image
from ogasearch.thumbs import THUMB_BOX

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:
    pytest.skip("playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium")) if p and Path(p).is_file()), None)
if CHROMIUM is None:
    pytest.skip("no Chromium at /usr/bin/chromium or on PATH (apt-get install chromium)", allow_module_level=True)

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 20_000
SHA = "[0-9a-f]{64}"


def output_dir() -> Path:
    """Where screenshots go: $OGASEARCH_TEST_OUTPUT, else test-output/ at the repo root."""
    out = Path(os.environ.get("OGASEARCH_TEST_OUTPUT") or REPO / "test-output")
    out.mkdir(parents=True, exist_ok=True)
    return out


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot to the test output and print where it went."""
    path = output_dir() / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def png_bytes(rgba: Any) -> bytes:
    """RGBA pixels as PNG file bytes."""
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, "PNG")
    return out.getvalue()


def query_of(url: str) -> dict[str, list[str]]:
    """The decoded query parameters of a URL."""
    return parse_qs(urlsplit(url).query)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SearchableData:
    return build_searchable(tmp_path_factory.mktemp("web-browser"))


@pytest.fixture(scope="module")
def sources(data: SearchableData) -> dict[str, bytes]:
    """The bytes of every plain image file by its name, to know what each thumbnail should show."""
    found = {f.name: f.data for page in data.pages for f in page.files if f.mime == "image/png"}
    found.update({path.name: path.read_bytes() for path in (data.assets / "monsters").glob("*.png")})
    return found


@pytest.fixture(scope="module")
def base(data: SearchableData) -> Iterator[str]:
    with serving(data.config()) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@contextmanager
def browsing(browser: Browser, base: str, viewport: dict[str, int], **options: Any) -> Iterator[Page]:
    """A fresh page (own context, clipboard allowed); fails the test if a script on it threw."""
    context = browser.new_context(viewport=viewport, **options)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture
def page(browser: Browser, base: str) -> Iterator[Page]:
    with browsing(browser, base, DESKTOP) as page:
        yield page


@pytest.fixture
def phone(browser: Browser, base: str) -> Iterator[Page]:
    with browsing(browser, base, PHONE, device_scale_factor=2, is_mobile=True, has_touch=True) as page:
        yield page


def expect_upload_results(page: Page, image: bytes) -> None:
    """The address bar holds /?upload=<sha256 of the image> and the image itself is the first, exact result."""
    sha = hashlib.sha256(image).hexdigest()
    page.wait_for_url(re.compile(rf"/\?upload={sha}$"))
    expect(page.locator(".query-image")).to_be_visible()
    expect(page.locator(".card").first.locator(".match")).to_have_text("exact")


def native_size(image: bytes, name: str) -> tuple[int, int]:
    """(width, height) of a sprite at its native scale, trimmed, as the index keeps it."""
    pixels = canonicalize(decode_image(image, name=name).frames[0].pixels).pixels
    return pixels.shape[1], pixels.shape[0]


def check_thumbnails(page: Page, at_least: int, sources: dict[str, bytes]) -> int:
    """Thumbnails are drawn pixelated, at their own size (no fractional rescaling by the page), and, where the
    card's file is known, enlarged from the native sprite by a whole number. Returns how many were known."""
    cards = page.locator(".card")
    expect(cards.nth(at_least - 1)).to_be_visible()
    known = 0
    for k in range(at_least):
        card = cards.nth(k)
        img = card.locator(".thumb img")
        img.scroll_into_view_if_needed()
        img.evaluate("img => img.decode()")  # a lazy image loads once in view; fails if it cannot be decoded
        info = img.evaluate(
            """img => ({
                rendering: getComputedStyle(img).imageRendering,
                natural: [img.naturalWidth, img.naturalHeight],
                shown: [img.getBoundingClientRect().width, img.getBoundingClientRect().height],
            })"""
        )
        assert info["rendering"] == "pixelated", info
        nw, nh = info["natural"]
        assert 0 < nw <= THUMB_BOX and 0 < nh <= THUMB_BOX, info
        assert info["shown"] == [nw, nh], info
        paths = card.locator(".path")
        name = (paths.inner_text() if paths.count() else card.locator("h2.title").inner_text()).strip()
        if name not in sources or card.locator(".tile").count():
            continue
        sw, sh = native_size(sources[name], name)
        assert nw % sw == 0 and nh % sh == 0 and nw // sw == nh // sh, f"{name}: {sw}×{sh} shown as {nw}×{nh}"
        known += 1
    return known


def no_sideways_scroll(page: Page) -> None:
    width, inner = page.evaluate("[document.scrollingElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"{page.url} scrolls sideways: {width} px wide in a {inner} px window"


def test_search_by_words(page: Page, base: str, data: SearchableData, sources: dict[str, bytes]) -> None:
    target = next(p for p in data.pages if len(p.licenses) > 1 and p.attribution)
    page.goto(base + "/")
    expect(page.locator(".intro")).to_be_visible()
    expect(page.locator("#imsi")).to_be_focused()
    page.locator("#imsi").fill(target.title)
    page.locator("#imsi").press("Enter")
    page.wait_for_url(re.compile(r"/\?imsi="))
    assert query_of(page.url) == {"imsi": [target.title]}, page.url  # short and shareable: no empty filters
    expect(page).to_have_title(re.compile(re.escape(target.title)))
    card = page.locator(".card").filter(has=page.locator("h2.title", has_text=target.title)).first
    expect(card).to_be_visible()
    expect(card.locator(".author")).to_have_text(f"by {target.author}")
    expect(card.locator(".badge")).to_have_text([name for name, _ in target.licenses])
    expect(card.locator("h2.title a")).to_have_attribute("href", re.compile(re.escape(target.path) + "$"))
    for k in range(page.locator(".card").count()):
        expect(page.locator(".card").nth(k).locator("h2.title")).not_to_be_empty()
        expect(page.locator(".card").nth(k).locator(".badge").first).to_be_visible()
    assert check_thumbnails(page, page.locator(".card").count(), sources) >= 1

    # The URL is the search: opened afresh it shows the same results, with the words back in the box.
    first = page.locator(".card").first.get_attribute("data-item")
    page.goto(page.url)
    expect(page.locator("#imsi")).to_have_value(target.title)
    expect(page.locator(".card").first).to_have_attribute("data-item", first or "")


def test_upload_with_file_picker(page: Page, base: str, data: SearchableData, sources: dict[str, bytes]) -> None:
    path = data.assets / "monsters" / "monster 07.png"
    page.goto(base + "/")
    page.locator("#file").set_input_files(path)
    expect_upload_results(page, path.read_bytes())
    first = page.locator(".card").first
    expect(first.locator("h2.title")).to_have_text(path.name)
    expect(page.locator(".query")).to_contain_text("Your image")
    assert check_thumbnails(page, 6, sources) >= 3
    screenshot(page, "web-results-desktop.png")


def test_upload_by_drag_and_drop(page: Page, base: str, data: SearchableData) -> None:
    image = (data.assets / "monsters" / "monster 11.png").read_bytes()
    page.goto(base + "/")
    transfer = page.evaluate_handle(
        """bytes => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"}));
            return transfer;
        }""",
        list(image),
    )
    page.locator("#drop").dispatch_event("dragenter", {"dataTransfer": transfer})
    expect(page.locator("#drop")).to_have_class(re.compile(r"\bover\b"))
    page.locator("#drop").dispatch_event("drop", {"dataTransfer": transfer})
    expect_upload_results(page, image)
    expect(page.locator(".card").first.locator("h2.title")).to_have_text("monster 11.png")


def test_upload_by_paste(page: Page, base: str) -> None:
    tile = png_bytes(sprite(103))  # the tile at x 48, y 0 of tileset.png
    page.goto(base + "/")
    page.evaluate(
        """bytes => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], "image.png", {type: "image/png"}));
            const paste = new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true, cancelable: true});
            document.body.dispatchEvent(paste);
        }""",
        list(tile),
    )
    expect_upload_results(page, tile)
    first = page.locator(".card").first
    expect(first.locator("h2.title")).to_have_text("tileset.png")
    expect(first.locator(".tile")).to_contain_text("x 48, y 0")


def test_more_like_this(page: Page, base: str, data: SearchableData, sources: dict[str, bytes]) -> None:
    page.goto(base + "/")
    page.locator("#file").set_input_files(data.assets / "monsters" / "monster 05.png")
    page.wait_for_url(re.compile(rf"/\?upload={SHA}$"))
    card = page.locator(".card").first
    item = card.get_attribute("data-item")
    assert item
    card.locator("a.more").click()
    page.wait_for_url(re.compile(rf"/\?similar={item}$"))
    expect(page.locator(".query")).to_contain_text("More like")
    expect(page.locator(".query")).to_contain_text("monster 05.png")
    expect(page.locator(".query-image")).to_have_attribute("src", f"/thumb/{item}.png")
    expect(page.locator(".card").first).to_be_visible()
    shown = page.locator(".card").evaluate_all("cards => cards.map(c => c.dataset.item)")
    assert shown and item not in shown
    assert check_thumbnails(page, 4, sources) >= 1


def test_copy_attribution(page: Page, base: str, data: SearchableData) -> None:
    target = next(p for p in data.pages if p.attribution)
    page.goto(base + "/?imsi=" + target.slug.replace("-", "+"))
    card = page.locator(".card").filter(has=page.locator("h2.title", has_text=target.title)).first
    button = card.locator("button.copy")
    credit = button.get_attribute("data-credit") or ""
    assert credit.startswith(f'"{target.title}" by {target.author}, licensed '), credit
    assert target.path in credit and target.attribution in credit, credit
    button.click()
    expect(button).to_have_text("copied")
    assert page.evaluate("navigator.clipboard.readText()") == credit


def test_phone_layout(phone: Page, base: str, data: SearchableData, sources: dict[str, bytes]) -> None:
    phone.goto(base + "/")
    no_sideways_scroll(phone)
    expect(phone.locator("form.drop label")).to_be_visible()
    phone.locator("#file").set_input_files(data.assets / "monsters" / "monster 13.png")
    expect_upload_results(phone, (data.assets / "monsters" / "monster 13.png").read_bytes())
    no_sideways_scroll(phone)
    assert check_thumbnails(phone, 3, sources) >= 1
    screenshot(phone, "web-results-phone.png")
    longest = max(data.pages, key=lambda p: len(p.title))
    for path in ("/?imsi=" + longest.title, "/?similar=1", "/about", "/?similar=99999999"):
        phone.goto(base + path)
        expect(phone.locator("main")).to_be_visible()
        no_sideways_scroll(phone)


def test_about_page_counts(page: Page, base: str, data: SearchableData) -> None:
    page.goto(base + "/")
    page.get_by_role("link", name="about").click()
    page.wait_for_url(re.compile(r"/about$"))
    expect(page.locator("#stat-pages")).to_have_text(str(len(data.pages)))
    counts = {key: int(page.locator(f"#stat-{key}").inner_text()) for key in ("files", "images", "tiles", "indexed")}
    assert counts["files"] >= 25 and counts["images"] >= counts["files"], counts  # 24 monsters + a sheet + OGA files
    assert counts["tiles"] >= 8 and counts["indexed"] >= counts["images"], counts
    expect(page.locator("#stat-crawl")).to_contain_text("finished")


def test_error_messages(page: Page, base: str) -> None:
    page.goto(base + "/")
    page.locator("#file").set_input_files({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a picture"})
    status = page.locator("#upload-status")
    expect(status).to_contain_text("Sorry")
    expect(status).to_contain_text(re.compile(r"not .*image", re.IGNORECASE))
    expect(status).to_have_class(re.compile(r"\bfailed\b"))
    assert urlsplit(page.url).path == "/" and not urlsplit(page.url).query

    response = page.goto(base + "/?similar=99999999")
    assert response is not None and response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("no item 99999999")
    expect(page.locator("#search")).to_be_visible()  # a way on from the error

    response = page.goto(base + "/?upload=" + "0" * 64)
    assert response is not None and response.status == 404
    expect(page.get_by_role("alert")).to_contain_text("upload the image again")
