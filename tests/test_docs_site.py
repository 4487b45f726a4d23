"""The documentation site, built and opened in headless Chromium.

Builds the site with ``mkdocs build --strict`` into a temporary directory, serves it
on localhost and loads a few pages in headless Chromium (``--dump-dom`` gives the DOM
after the page's scripts ran, ``--screenshot`` a picture, kept under pytest's
``tmp_path``). Checks what a reader sees: math typeset as MathML with no LaTeX
delimiters or numpydoc roles left over, nothing fetched from another host, images
that load and internal links that land on a built file and anchor.

A missing ``chromium`` is an error, not a skip (``.ci/run`` installs it); set
``CHROMIUM`` to use another binary.
"""

from __future__ import annotations

import doctest
import functools
import html.parser
import http.server
import json
import os
import pathlib
import posixpath
import shutil
import subprocess
import sys
import threading
import urllib.parse
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = {"landing": "", "math": "math/", "api": "api/elementwise/", "gallery": "gallery/"}
RAW_MARKUP = (r"\(", r"\)", r"\[", r"\]", "$$") + tuple(
    f":{role}:" for role in ("func", "class", "meth", "attr", "data", "mod", "obj", "math")
)


class _Page(html.parser.HTMLParser):
    """Visible text, <math> count, image sources, links, ids and external resources."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.math = 0
        self.images: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.external: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if "id" in attr:
            self.ids.add(attr["id"])
        if tag in ("script", "style"):
            self._hidden += 1
        if tag == "math":
            self.math += 1
        if tag == "img":
            self.images.append(attr.get("src", ""))
        if tag == "a" and "href" in attr:
            self.links.append(attr["href"])
        resource = attr.get("src") if tag in ("script", "img") else None
        if tag == "link" and "stylesheet" in attr.get("rel", ""):
            resource = attr.get("href")
        if resource and urllib.parse.urlsplit(resource).netloc:
            self.external.append(resource)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


def _parse(markup: str) -> _Page:
    page = _Page()
    page.feed(markup)
    return page


def _chromium() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail(
            "chromium not found: apt-get install -y chromium (or set CHROMIUM)",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    """The built site's directory and the URL it is served at."""
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(out))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield out, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def rendered(site, tmp_path_factory: pytest.TempPathFactory) -> dict[str, _Page]:
    """Each page's DOM as Chromium rendered it; screenshots go next to the profile."""
    _, url = site
    chromium = _chromium()
    work = tmp_path_factory.mktemp("chromium")
    pages = {}
    for name, path in PAGES.items():
        run = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={work / 'profile'}",
                "--window-size=1200,1600",
                f"--screenshot={work / f'{name}.png'}",
                "--dump-dom",
                url + path,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0 and "</html>" in run.stdout, run.stderr[-2000:]
        assert (work / f"{name}.png").stat().st_size > 10_000, "blank screenshot"
        pages[name] = _parse(run.stdout)
    return pages


def _target(site_dir: pathlib.Path, page: str, href: str) -> tuple[pathlib.Path, str] | None:
    """The built file and fragment an internal link points to (None: external)."""
    parts = urllib.parse.urlsplit(href)
    if parts.scheme or parts.netloc or href.startswith(("mailto:", "javascript:")):
        return None
    path = posixpath.normpath(posixpath.join("/" + page, parts.path or "."))
    if parts.path == "":
        path = "/" + page
    file = site_dir / urllib.parse.unquote(path).lstrip("/")
    if file.is_dir() or path.endswith("/"):
        file = file / "index.html"
    return file, urllib.parse.unquote(parts.fragment)


def test_no_raw_markup(rendered) -> None:
    for name, page in rendered.items():
        text = "".join(page.text)
        left = [raw for raw in RAW_MARKUP if raw in text]
        assert not left, f"{name}: raw markup {left} in the rendered text"


def test_math_is_mathml(rendered) -> None:
    assert rendered["math"].math > 20
    assert rendered["api"].math > 5


def test_nothing_fetched_from_another_host(rendered) -> None:
    for name, page in rendered.items():
        assert not page.external, f"{name} loads {page.external}"


def test_images_load(site, rendered) -> None:
    site_dir, url = site
    assert rendered["gallery"].images, "the gallery shows pictures"
    assert rendered["landing"].images, "the landing page opens on a picture"
    for name, page in rendered.items():
        for src in page.images:
            target = _target(site_dir, PAGES[name], src)
            assert target is not None and target[0].is_file(), f"{name}: {src}"
            with urllib.request.urlopen(urllib.parse.urljoin(url + PAGES[name], src)) as r:
                assert r.status == 200 and r.headers["Content-Type"].startswith("image/")


def test_internal_links_resolve(site, rendered) -> None:
    site_dir, _ = site
    ids: dict[pathlib.Path, set[str]] = {}
    for name, page in rendered.items():
        assert page.links
        for href in page.links:
            target = _target(site_dir, PAGES[name], href)
            if target is None:
                continue
            file, fragment = target
            assert file.is_file(), f"{name}: {href} -> {file} is not built"
            if fragment and file.suffix == ".html":
                if file not in ids:
                    ids[file] = _parse(file.read_text(encoding="utf-8")).ids
                assert fragment in ids[file], f"{name}: {href}: no #{fragment}"


def test_search_index(site, rendered) -> None:
    site_dir, _ = site
    index = json.loads((site_dir / "search" / "search_index.json").read_text(encoding="utf-8"))
    assert any(doc["location"].startswith("api/elementwise/") for doc in index["docs"])
    assert "search" in "".join(rendered["landing"].text).lower()


def test_landing_page_example_runs() -> None:
    result = doctest.testfile(
        str(ROOT / "docs" / "index.md"),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted >= 3 and result.failed == 0


def test_every_built_page_is_typeset_and_linked(site) -> None:
    """Beyond the pages opened in Chromium: the built HTML of every page has no raw
    LaTeX or numpydoc role in its text, no external resource, images that exist and
    internal links that land on a built file."""
    site_dir, _ = site
    pages = sorted(site_dir.rglob("index.html"))
    assert len(pages) >= 15
    for file in pages:
        page_path = file.parent.relative_to(site_dir).as_posix()
        page_path = "" if page_path == "." else page_path + "/"
        page = _parse(file.read_text(encoding="utf-8"))
        text = "".join(page.text)
        left = [raw for raw in RAW_MARKUP if raw in text]
        assert not left, f"{page_path or 'landing'}: raw markup {left}"
        assert not page.external, f"{page_path}: loads {page.external}"
        for src in page.images:
            target = _target(site_dir, page_path, src)
            assert target is not None and target[0].is_file(), f"{page_path}: image {src}"
        for href in page.links:
            target = _target(site_dir, page_path, href)
            if target is not None:
                assert target[0].exists(), f"{page_path}: link {href} -> {target[0]}"
