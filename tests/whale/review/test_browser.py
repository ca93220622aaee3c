"""The review page in a real browser: Playwright driving Debian's Chromium against `spotter whale review`.

Slow (run with `-m slow`). Nothing is downloaded: the browser is the system's `chromium` package and Playwright is
used as a library only (`pip install playwright`, never `playwright install`). When either is missing the test
fails and says how to install it, rather than being skipped.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from spotter.whale.index import load_index
from tests.conftest import REPO

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
# no sandbox (containers and CI runners), and nothing that would reach the network
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
INSTALL = "apt-get install -y chromium && pip install playwright (never `playwright install`)"


def sync_playwright():
    """Playwright's sync API, or a failure that says how to install what is missing."""
    try:
        from playwright.sync_api import sync_playwright as start
    except ImportError:
        pytest.fail(f"the browser test needs Playwright for Python and Debian's Chromium: {INSTALL}")
    if not CHROMIUM.is_file():
        pytest.fail(f"the browser test needs Debian's Chromium at {CHROMIUM}: {INSTALL}")
    return start()


class ReviewServer:
    """`spotter whale review` in a subprocess on a free port; its address read from the line it prints."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "spotter", "--quiet", "whale", "review", *args, "--port", "0", "--no-browser"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        self.lines: list[str] = []
        ready = threading.Event()

        def read() -> None:
            for line in self.process.stdout:
                self.lines.append(line)
                if line.startswith("review: http"):
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        ready.wait(120)
        found = [re.search(r"http://127\.0\.0\.1:\d+/", line) for line in self.lines]
        if not any(found):
            self.stop()
            raise AssertionError(f"the review server did not start: {''.join(self.lines)}{self.process.stderr.read()}")
        self.url = next(m.group(0) for m in found if m)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # Ctrl+C
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def test_review_in_chromium_confirm_new_undo(tiny_run, index_copy, queue):
    playwright = sync_playwright()
    server = ReviewServer(str(tiny_run.run), str(queue), "--index", str(index_copy), "--user", "tester")
    try:
        with playwright as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(server.url)
            page.wait_for_url("**/review/1")
            assert page.locator(".keys").inner_text().count("undo") == 1  # the shortcuts are on the page

            # confirm photo 1 as its best known candidate, with that candidate's key
            best = page.locator(".card.candidate").first
            rank, confirmed = best.get_attribute("data-rank"), best.get_attribute("data-id")
            page.keyboard.press(rank)
            page.wait_for_url("**/review/2")

            # photo 2 is a new individual, its id typed into the box (Enter marks it)
            page.fill("#new-id", "tester-new-1")
            page.press("#new-id", "Enter")
            page.wait_for_url("**/review/3")
            assert page.locator(".q.new").inner_text().split() == ["2", "tester-new-1"]

            # U takes the last decision back: photo 2 is open again
            page.keyboard.press("u")
            page.wait_for_url("**/review/2")
            assert "Open" in page.locator("#status").inner_text() or "Looks new" in page.locator("#status").inner_text()
            assert page.locator(".q.confirm").count() == 1 and page.locator(".q.new").count() == 0

            # the confirmed photo is now the first candidate of its byte-for-byte twin (the last photo)
            page.goto(server.url + f"review/{page.locator('.q').count()}")
            assert page.locator(".card.candidate").first.get_attribute("data-id") == confirmed

            # the local-feature drawing of the query and a candidate, on demand
            page.locator('[data-action="features"]').first.click()
            page.wait_for_function("document.getElementById('pair-image').naturalWidth > 0")
            assert "RANSAC inliers" in page.locator("#pair-caption").inner_text()

            # a second confirm of photo 1 is refused on the page
            page.goto(server.url + "review/1")
            assert page.locator('[data-action="confirm"]').first.is_disabled()
            assert f"Confirmed as {confirmed}" in page.locator("#status").inner_text()
            browser.close()
    finally:
        code = server.stop()
    assert code == 0 and any(line.startswith("stopped") for line in server.lines)

    records = [json.loads(line) for line in (index_copy / "decisions.jsonl").read_text().splitlines()]
    assert [r["action"] for r in records] == ["confirm", "new", "undo"]
    assert {r["user"] for r in records} == {"tester"}
    assert records[0]["individual_id"] == confirmed and records[0]["rank"] == int(rank)
    assert 0 <= records[0]["probability"] <= 1
    assert records[1]["individual_id"] == "tester-new-1" and records[2]["undoes"] == records[1]["id"]
    photos = load_index(index_copy).photos
    catalogue = dict(zip(photos["path"], photos["individual_id"]))
    first, second = sorted(str(p) for p in queue.iterdir())[:2]
    assert catalogue[first] == confirmed and second not in catalogue
    assert "tester-new-1" not in set(photos["individual_id"])
