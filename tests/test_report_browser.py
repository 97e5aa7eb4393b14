"""The report in a real browser: headless Debian Chromium over every page from file://.

Checks what only a browser can: no console errors or uncaught exceptions, no request leaves file://, every
image decodes (naturalWidth > 0), the leaderboard sorts when a header is clicked, model links navigate. Saves a
screenshot of index.html to the test's tmp folder, and also to $COVERBENCH_SCREENSHOT when that is set (the
README's picture). Without Chromium or Playwright the test skips locally and FAILS under CI (CI=true); install
both with ``.ci/install-chromium.sh``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from core.data.prepared import PreparedDataset
from core.paths import RunPaths, project_root
from reports.build import build_report
from tests import report_fixture as fx

CHROMIUM = os.environ.get("COVERBENCH_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--allow-file-access-from-files",
]
SCREENSHOT_ENV = "COVERBENCH_SCREENSHOT"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _need(reason: str) -> None:
    msg = f"{reason}; install with .ci/install-chromium.sh"
    if _in_ci():
        pytest.fail(f"browser test cannot run in CI: {msg}", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        _need(f"Chromium not found at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("the Python package playwright is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    run = fx.build_tiny_run(tmp_path_factory.getbasetemp() / "report-run")
    base = tmp_path_factory.mktemp("browser")
    root = run.copy_run(base / "runs")
    cfg = base / "configs"
    shutil.copytree(project_root() / "configs", cfg, ignore=shutil.ignore_patterns("thresholds"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COVERBENCH_CONFIGS", str(cfg))
        index = build_report(RunPaths(root), dataset=PreparedDataset.open(run.data_root / fx.DATASET))
    return index.parent


def _column(page, header: str) -> list[str]:
    return page.evaluate(
        """(header) => {
            const t = document.getElementById('leaderboard');
            const col = Array.from(t.tHead.rows[0].cells).findIndex(c => c.textContent.trim().startsWith(header));
            return Array.from(t.tBodies[0].rows).map(r => r.cells[col].getAttribute('data-value'));
        }""",
        header,
    )


def _models(page) -> list[str]:
    return page.eval_on_selector_all("#leaderboard tbody tr td:first-child a", "els => els.map(e => e.textContent)")


def test_every_page_in_chromium(browser, report, tmp_path):
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    problems: list[str] = []

    def on_console(msg) -> None:
        if msg.type == "error":
            problems.append(f"console error: {msg.text}")

    def on_request(req) -> None:
        if not req.url.startswith(("file://", "data:")):
            problems.append(f"request left file://: {req.url}")

    page.on("console", on_console)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("request", on_request)

    pages = sorted(report.glob("*.html"))
    assert len(pages) == 8  # five pages and three model pages
    for path in pages:
        page.goto(path.as_uri(), wait_until="load")
        broken = page.evaluate(
            "() => Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
        )
        assert broken == [], f"{path.name}: images did not load: {broken}"
        n_images = page.evaluate("() => document.images.length")
        if path.name.startswith("model-dcgan_cond"):
            assert n_images >= 5  # samples, snapshot, 3 t-SNE maps, training curves
        if path.name == "encoders.html":
            assert n_images == 2
        assert page.evaluate("() => document.querySelectorAll('script:not([src])').length") == (
            1 if path.name in ("index.html", "encoders.html", "music.html") else 0
        )
    assert problems == []

    # the leaderboard: rows, sorting by FID both ways (missing values last), a link that navigates
    page.goto((report / "index.html").as_uri(), wait_until="load")
    assert _models(page) == ["dcgan", "dcgan_cond", "wgan_gp"]
    fid_header = page.locator("#leaderboard thead th", has_text="FID").first
    fid_header.click()
    fids = [float(v) for v in _column(page, "FID")]
    assert fids == sorted(fids) and _models(page)[0] == "wgan_gp" and _models(page)[-1] == "dcgan"
    assert fid_header.get_attribute("aria-sort") == "ascending"
    fid_header.click()
    fids = [float(v) for v in _column(page, "FID")]
    assert fids == sorted(fids, reverse=True) and _models(page)[0] == "dcgan"
    page.locator("#leaderboard thead th", has_text="training time").click()
    times = _column(page, "training time")
    assert times[-1] == "" and _models(page)[-1] == "wgan_gp"  # no training folder: sorts last
    assert [float(t) for t in times[:-1]] == sorted(float(t) for t in times[:-1])
    page.locator("#leaderboard thead th", has_text="model").click()
    assert _models(page) == ["dcgan", "dcgan_cond", "wgan_gp"]
    assert problems == []

    shot = tmp_path / "report-index.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    extra = os.environ.get(SCREENSHOT_ENV)
    if extra:
        Path(extra).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, extra)

    page.click("#leaderboard a[href='model-dcgan_cond.html']")
    page.wait_for_load_state("load")
    assert page.url.endswith("/model-dcgan_cond.html")
    assert page.locator("h1").inner_text().startswith("dcgan_cond")
    assert problems == []
    page.close()
