"""Regenerate ``docs/img/report.png``: a real report, screenshotted in headless Chromium.

Writes a small profile config (scikit-learn's digits at 32x32, the quick start's 4-layer
CNN, dense against ssProp keep 0.2 interleaved, two seeds, 6 epochs) into a temporary
folder, trains it with the ``ssprop-energy profile`` command, and photographs the
``report.html`` that the command wrote, with Playwright driving Debian's Chromium
(``apt-get install -y chromium``; ``playwright install`` is not needed): the headline and
the charts that follow it. The environment and table sections are hidden in the picture (a
style added to the page), since their wide tables do not fit it. Takes about a minute on 2
CPU cores; the figures in the picture are whatever this machine measures.

    .venv/bin/python docs/scripts/report_picture.py [--out docs/img/report.png]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CONFIG = {
    "name": "report-picture",
    "model": {"name": "cnn", "kwargs": {"depth": 4, "width": 32}},
    "data": {"name": "digits", "image_size": 32, "batch_size": 64},
    "train": {"epochs": 6, "lr": 0.02, "device": "cpu"},
    "methods": [{"name": "dense"}, {"name": "ssprop", "keep": 0.2, "interleave": True}],
    "seeds": [0, 1],
    "energy": {"idle_s": 0.5},
    "target_accuracy": 0.9,
}
# the page's first two sections (environment, tables) are left out of the picture
HIDE = "body > section:nth-of-type(1), body > section:nth-of-type(2) {display: none}"


def cli() -> str:
    """The ``ssprop-energy`` command of this interpreter's environment."""
    beside = Path(sys.executable).with_name("ssprop-energy")
    found = str(beside) if beside.exists() else shutil.which("ssprop-energy")
    if found is None:
        sys.exit("error: no ssprop-energy command: pip install -e '.[dev]' first")
    return found


def build_report(work: Path) -> Path:
    """Profile the tiny config into ``work``; returns the report.html the CLI wrote."""
    config = work / "report-picture.yaml"
    config.write_text(yaml.safe_dump(CONFIG, sort_keys=False), encoding="utf-8")
    subprocess.run([cli(), "profile", str(config), "--out", str(work), "--quiet"], check=True)
    report = work / str(CONFIG["name"]) / "report.html"
    if not report.is_file():
        sys.exit(f"error: the profile command wrote no report at {report}")
    return report


def screenshot(report: Path, out: Path, width: int, height: int) -> None:
    """The top ``height`` pixels of ``report`` at ``width``, without its tables, as a PNG."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                args=FLAGS,
                viewport={"width": width, "height": height},
            )
            page = browser.new_page()
            page.goto(report.as_uri(), wait_until="load")
            page.add_style_tag(content=HIDE)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=False)
            browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "report.png")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1400)
    args = parser.parse_args()
    if not CHROMIUM.exists():
        sys.exit(f"error: needs Debian's Chromium at {CHROMIUM}: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="report-picture-") as tmp:
        report = build_report(Path(tmp))
        screenshot(report, args.out, args.width, args.height)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
