"""The book (``make book``) opened in a real browser: headless Chromium, network blocked.

Builds the site from the ``smoke`` profile's executed notebooks (``make nbtest`` writes them to
``build/notebooks/smoke``) and opens every page, checking that it loads without console errors or
page exceptions, fetches nothing outside the site, renders its maths (MathJax ran, no error
nodes, no raw ``$...$`` left in the prose), loads every image, and that every internal link points
to an existing file (and anchor). Chromium is the Debian package, which ``make setup`` installs
when missing; without it this test fails and says so (it never passes silently).
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from locdiff import book, plots

pytestmark = pytest.mark.book

EXECUTED = plots.repo_root() / "build" / "notebooks" / "smoke"
RAW_MATH = re.compile(r"(?<![\\\w])\$[^$\s][^$\n]*\$|\$\$")
WAIT_MATHJAX = """() => (window.MathJax && MathJax.startup && MathJax.startup.promise)
  ? MathJax.startup.promise.then(() => true) : false"""
PROSE_TEXT = """() => { const b = document.body.cloneNode(true);
  b.querySelectorAll('pre, code, script, style, mjx-container, .math, .highlight, .output')
   .forEach(e => e.remove());
  return b.innerText; }"""


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("Chromium is not installed: `make setup` installs the Debian package `chromium` "
                    "(apt-get install chromium); the book's browser test cannot run without it")
    return path


def _internal_targets(html_file: Path, hrefs: list[str]) -> list[str]:
    """The internal links of a page that do not resolve: a missing file or a missing anchor."""
    bad = []
    for href in hrefs:
        url = urlparse(href)
        if url.scheme in ("http", "https", "mailto", "javascript", "data") or not (url.path or url.fragment):
            continue
        target = (html_file.parent / unquote(url.path)).resolve() if url.path else html_file
        if url.scheme == "file":
            target = Path(unquote(url.path))
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            bad.append(href)
        elif url.fragment and target.suffix == ".html":
            text = target.read_text(encoding="utf-8", errors="replace")
            if f'id="{url.fragment}"' not in text and f'name="{url.fragment}"' not in text:
                bad.append(href)
    return bad


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    if not all((EXECUTED / f"{n}.ipynb").exists() for n in book.NOTEBOOKS):
        pytest.fail(f"executed smoke notebooks missing in {EXECUTED}: run `make nbtest` first (make test does)")
    return book.build("smoke", out=tmp_path_factory.mktemp("book"))


def test_every_page_loads_offline_with_rendered_maths_images_and_links(site):
    try:
        from playwright import sync_api
    except ImportError as e:           # a dev dependency: fail, do not skip
        pytest.fail(f"playwright is not installed ({e}): `make setup` installs it with the dev extra")
    pages = sorted(p for p in site.rglob("*.html") if "_static" not in p.parts)
    names = {p.name for p in pages}
    assert {"index.html", "teachers.html"} <= names
    assert {f"{n}.html" for n in book.NOTEBOOKS} <= {p.name for p in (site / "notebooks").glob("*.html")}
    problems: dict[str, list[str]] = {}
    base = site.as_uri() + "/"                 # the site as a reader opens it: file://, no server
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        page = browser.new_page()
        external, errors = [], []

        def route(r):
            if r.request.url.startswith(base):
                r.continue_()
            else:
                external.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"not loaded: {r.url} ({r.failure})")
                if r.url.startswith(base) else None)
        maths_pages = 0
        for html in pages:
            external.clear(), errors.clear()
            page.goto(html.as_uri(), wait_until="load")
            has_math = page.evaluate("() => document.querySelectorAll('.math').length") > 0
            if has_math:
                assert page.evaluate(WAIT_MATHJAX), f"{html.name}: MathJax did not load"
                maths_pages += 1
            found = []
            if has_math and page.evaluate("() => document.querySelectorAll('mjx-merror, [data-mjx-error]').length"):
                found.append("MathJax error nodes")
            if has_math and not page.evaluate("() => document.querySelectorAll('mjx-container svg').length"):
                found.append("maths not rendered")
            raw = RAW_MATH.findall(page.evaluate(PROSE_TEXT))
            if raw:
                found.append(f"raw maths left: {raw[:3]}")
            broken = page.evaluate("() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
                                   ".map(i => i.getAttribute('src'))")
            if broken:
                found.append(f"images not loaded: {broken[:3]}")
            hrefs = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'))")
            bad_links = _internal_targets(html, hrefs)
            if bad_links:
                found.append(f"broken internal links: {bad_links[:5]}")
            if external:
                found.append(f"requests outside the site: {external[:3]}")
            if errors:
                found.append(f"console errors: {errors[:3]}")
            if found:
                problems[str(html.relative_to(site))] = found
        browser.close()
    assert not problems, problems
    assert maths_pages >= len(book.NOTEBOOKS), "the notebooks' equations were not found on their pages"
