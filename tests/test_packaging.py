"""The wheel built from the checkout carries what an installed spotter needs outside the repository."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from tests.conftest import REPO


def test_wheel_ships_configs_templates_and_license(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "-w", str(tmp_path), "--no-deps", "--no-build-isolation",
         "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("spotter-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for task in ("seti", "whale", "toy"):
        assert f"spotter/configs/{task}/cpu.yaml" in names
    for page_file in ("templates/review.html.j2", "templates/new_card.html.j2", "static/review.js", "static/review.css"):
        assert f"spotter/whale/review/{page_file}" in names  # the review page's templates and static files
    assert any(n.endswith("/licenses/LICENSE") for n in names)
    assert not [n for n in names if n.startswith(("tests/", "bench/"))]
