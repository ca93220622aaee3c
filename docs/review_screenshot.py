"""Draws docs/review.png: the whale review page in headless Chromium, on generated data and a small trained run.

    python docs/review_screenshot.py [--out docs/review.png] [--work FOLDER]

Needs Debian's Chromium and Playwright for Python (`apt-get install -y chromium`, `pip install playwright`; never
`playwright install`). Takes a few minutes on a laptop CPU (most of it training).
"""

from __future__ import annotations

import argparse
import io
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.whale.review.test_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  the launch the browser test uses


def spotter(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "spotter", "--quiet", *args], check=True, cwd=REPO)


def showcase(page, url: str) -> int:
    """An open photo whose best answer is a known individual above the threshold, new_individual after it."""
    for item in page.request.get(f"{url}api/queue").json()["photos"]:
        if item["status"] != "open":
            continue
        answers = page.request.get(f"{url}api/photos/{item['number']}").json()["candidates"]
        names = [a["individual_id"] for a in answers]
        if names[0] != "new_individual" and "new_individual" in names:
            return item["number"]
    return 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "review.png"))
    parser.add_argument("--work", help="folder for the data, run and index (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="review-shot-"))
    data, run, index = work / "data", work / "whale", work / "index"
    if not data.exists():
        spotter("whale", "synth", str(data), "--individuals", "40", "--image-size", "160", "--seed", "0")
    if not run.exists():
        spotter(
            "whale",
            "train",
            str(data),
            "--out",
            str(run),
            "epochs=4",
            "image_size=64",
            "n_folds=2",
            "train_folds=[]",
            "threads=1",
        )
    (index / "decisions.jsonl").unlink(missing_ok=True)
    spotter("whale", "index", str(run), str(data), "--out", str(index))

    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spotter",
            "--quiet",
            "whale",
            "review",
            str(run),
            str(data / "test_images"),
            "--index",
            str(index),
            "--port",
            "0",
            "--no-browser",
            "--user",
            "ana",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        url = None
        for line in server.stdout:
            found = re.search(r"http://127\.0\.0\.1:\d+/", line)
            if found:
                url = found.group(0)
                break
        if url is None:
            raise SystemExit("the review server did not start")
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.goto(url)
            page.wait_for_url("**/review/1")
            page.keyboard.press(page.locator(".card.candidate").first.get_attribute("data-rank"))  # confirm one
            page.wait_for_url("**/review/2")
            page.goto(f"{url}review/{showcase(page, url)}")
            page.wait_for_load_state("networkidle")
            shot = page.screenshot()
            browser.close()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)

    from PIL import Image

    image = Image.open(io.BytesIO(shot)).convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
    image.save(args.out, optimize=True)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
