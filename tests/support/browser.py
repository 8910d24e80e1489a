"""A real browser for tests that check what a user sees: Debian's Chromium, headless.

Single-page apps such as MLflow's UI render in JavaScript after several API calls, so a page is
read after Chromium's virtual-time budget has let them finish (`--virtual-time-budget` advances
the page's clock only while nothing is loading)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

# Where `tools/chromium.sh` (run by `make test`) installs it.
CANDIDATES = ("chromium", "chromium-browser")
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000")


def chromium() -> str:
    for name in CANDIDATES:
        if found := shutil.which(name):
            return found
    pytest.fail(
        "no Chromium on PATH: `make test` installs Debian's (tools/chromium.sh); or apt-get install chromium"
    )


def rendered(url: str, screenshot: Path | None = None, timeout_s: float = 90) -> str:
    """The DOM of `url` once its scripts have run; a PNG of the page at `screenshot` if given."""
    browser = chromium()
    if screenshot is not None:
        subprocess.run(
            [browser, *_FLAGS, "--window-size=1400,1000", f"--screenshot={screenshot}", url],
            capture_output=True, timeout=timeout_s, check=True,
        )  # fmt: skip
    done = subprocess.run(
        [browser, *_FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=timeout_s, check=True
    )
    return done.stdout
