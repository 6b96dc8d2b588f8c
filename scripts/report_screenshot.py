"""docs/report.png, the README's picture of report.html: deploy the digits example (unless its
output folder already has a report), open report.html in headless Chromium and photograph the top
of the page (fit at a glance and the arena over time), where a reader looks first.

    python scripts/report_screenshot.py [--digits examples/digits/artifacts] [--device qemu-mps2-an386]
                                        [--png docs/report.png] [--out build/digits-qemu-mps2-an386]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--digits", default="examples/digits/artifacts")
    ap.add_argument("--device", default="qemu-mps2-an386")
    ap.add_argument("--png", default="docs/report.png")
    ap.add_argument("--out", help="the deploy's output folder (default: build/digits-DEVICE)")
    ap.add_argument("--height", type=int, default=1700, help="pixels of the page's top to keep")
    args = ap.parse_args()
    out = Path(args.out or f"build/digits-{args.device}")
    digits = Path(args.digits)
    if not (out / "report.json").is_file():
        subprocess.run([sys.executable, "-m", "edgeq", "deploy", str(digits / "digits.keras"), "--device", args.device,
                        "--data", str(digits / "calib.npz"), "--val", str(digits / "val.npz"), "--out", str(out)],
                       check=True)
    subprocess.run([sys.executable, "-m", "edgeq", "report", str(out)], check=True)  # the page of this edgeq

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        browser = p.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", args=FLAGS,
                                                       viewport={"width": 1000, "height": args.height})
        tab = browser.new_page()
        tab.goto((out / "report.html").resolve().as_uri())
        tab.screenshot(path=args.png, clip={"x": 0, "y": 0, "width": 1000, "height": args.height})
        browser.close()
    print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
