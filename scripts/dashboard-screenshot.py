"""Regenerates docs/dashboard.png: runs `omsyn demo --keep`, serves the demo's base with
`omsyn run --http`, and photographs the dashboard in headless Chromium.

    /opt/omsyn-venv/bin/python scripts/dashboard-screenshot.py [OMSYN_BIN] [OUT.png]
"""

import json
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

omsyn = sys.argv[1] if len(sys.argv) > 1 else "target/release/omsyn"
out = sys.argv[2] if len(sys.argv) > 2 else "docs/dashboard.png"
with tempfile.TemporaryDirectory(prefix="omsyn-shot-") as root:
    subprocess.run([omsyn, "demo", "--keep", root], check=True, stdout=subprocess.DEVNULL)
    daemon = subprocess.Popen(
        [omsyn, "--json", "--data", f"{root}/base", "run", "--listen", "127.0.0.1:0", "--no-mdns",
         "--http", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        url = json.loads(daemon.stdout.readline())["dashboard"]
        options = webdriver.ChromeOptions()
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1500"):
            options.add_argument(arg)
        browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            browser.get(url)
            WebDriverWait(browser, 30).until(lambda b: b.execute_script("return document.body.dataset.loaded"))
            time.sleep(0.5)  # let the charts lay out before the picture; not a synchronisation
            browser.save_screenshot(out)
        finally:
            browser.quit()
    finally:
        daemon.kill()
        daemon.wait()
print(f"wrote {out}")
