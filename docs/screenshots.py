"""Take the README's console screenshots: `docs/console.png` (laptop) and `docs/console-phone.png` (phone).

    .venv/bin/python docs/screenshots.py [--out docs]

Starts the real app (tests/apprunner.py) with two endpoints, sends nine events of which one fails
every attempt, unlocks the console in headless Chromium and opens the dead event, at 1280 px and
at 390 px (a phone, 2x). Needs Debian's Chromium and the `playwright` package (requirements-dev.txt);
emoji need a colour emoji font (`apt-get install fonts-noto-color-emoji`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from apprunner import SECRET, fixture_json, running_app  # noqa: E402
from test_console_browser import CHROMIUM_ARGS, chromium_or_fail  # noqa: E402

LOG_EVENTS = (ROOT / "handlers" / "log_events.py").read_text()
RETRAIN = '''"""Starts a fine-tuning job when a dataset of my-org changes."""
from lib import Events, WebhookPayload

EVENTS = Events(scope="repo.content")


def handle(payload: WebhookPayload):
    card = {"language": "en"}
    return {"job": "ft-" + payload.repo.name.split("/")[1], "license": card["license"]}
'''
EVENTS = [  # (endpoint, fixture, repo name, repo type)
    ("log_events", "repo-content-update-space-new-pr-ref.json", "my-org/llama-ft", "model"),
    ("log_events", "discussion-create-pr-opened.json", "my-org/llama-ft", "model"),
    ("retrain", "repo-content-update-space-new-pr-ref.json", "my-org/alpaca-clean", "dataset"),
    ("log_events", "repo-content-update-space-new-pr-ref.json", "my-org/alpaca-clean", "dataset"),
    ("retrain", "discussion-create-with-comment.json", "my-org/alpaca-clean", "dataset"),
    ("log_events", "discussion-create-with-comment.json", "my-org/llama-ft", "model"),
    ("log_events", "repo-content-update-space-new-pr-ref.json", "my-org/llama-ft", "model"),
    ("retrain", "repo-content-update-space-new-pr-ref.json", "my-org/chat-logs", "dataset"),
    ("log_events", "repo-content-update-space-new-pr-ref.json", "my-org/chat-logs", "dataset"),
]


def send_events(app) -> None:
    for number, (endpoint, fixture, repo, repo_type) in enumerate(EVENTS):
        body = fixture_json(fixture)
        body["repo"].update(name=repo, type=repo_type)
        body["repo"]["headSha"] = f"{number:040x}"
        app.post(f"/webhooks/{endpoint}", body, headers={"webhook-id": f"screenshot-{number}"})
    time.sleep(1)


def open_dead_event(page, url: str) -> None:
    """Unlock the console with the secret and open event #8, the dead one, at its traceback."""
    from playwright.sync_api import expect

    page.goto(url)
    page.get_by_role("tab", name="Console").click()
    page.locator("#console-secret input").fill(SECRET)
    page.locator("#console-unlock").click()
    expect(page.locator("#console-who")).to_contain_text("Console unlocked")
    expect(page.locator("#deliveries")).to_contain_text("chat-logs")
    page.locator("#event-number input").fill("8")
    page.locator("#event-number input").press("Enter")
    expect(page.locator("#event-attempts")).to_contain_text("KeyError")
    page.wait_for_timeout(500)  # the last repaint


def shoot(url: str, out: Path) -> None:
    """The whole page at laptop width; the console itself at phone width (390 px at 2x, as a phone renders)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_or_fail(), args=CHROMIUM_ARGS)
        laptop = browser.new_context(viewport={"width": 1280, "height": 900})
        page = laptop.new_page()
        open_dead_event(page, url)
        page.screenshot(path=str(out / "console.png"), full_page=True)
        phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
        page = phone.new_page()
        open_dead_event(page, url)
        box = page.locator("#console").bounding_box()
        top = page.evaluate("window.scrollY") + box["y"] - 16
        clip = {"x": 0, "y": top, "width": 390, "height": box["height"] + 32}
        page.screenshot(path=str(out / "console-phone.png"), full_page=True, clip=clip)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as folder,
        running_app(
            Path(folder),
            handlers={"log_events.py": LOG_EVENTS, "retrain.py": RETRAIN},
            WEBHOOK_MAX_ATTEMPTS="1",
            SPACE_ID="my-org/webhooks",  # as deployed: the Space's URLs, not the local notice
            DATA_DIR="data",  # as a Space shows it, not a temporary folder's path
            SPACE_HOST="my-org-webhooks.hf.space",
        ) as app,
    ):
        send_events(app)
        shoot(app.url, args.out)


if __name__ == "__main__":
    main()
