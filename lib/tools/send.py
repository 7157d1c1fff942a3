"""`python -m lib.send`: post a realistic Hub event to a running app, to try a handler by hand.

The event is a sample of the chosen kind (`lib/core/sample_events.py`) or a JSON file, sent the way the
Hub sends it: a POST with the secret in `X-Webhook-Secret`. It is marked as a test event
(`X-Webhook-Test: 1`) so the journal and the console tell it apart, unless `--no-test-flag`.

Examples:
    ```
    python app.py &                                   # in another terminal
    python -m lib.send commit                         # -> /webhooks/log_events
    python -m lib.send comment --to discussion_bot --comment "/ping" --repo my-user/my-model --discussion 1
    python -m lib.send commit --to model_card_check --repo my-user/my-model --sha <a commit of its main>
    python -m lib.send --file tests/fixtures/discussion-create-pr-opened.json --url https://me-space.hf.space/webhooks/log_events
    ```
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from dotenv import dotenv_values

from ..core.sample_events import REPO_TYPES, SAMPLE_KINDS, sample_payload

DEFAULT_URL = "http://127.0.0.1:7860/webhooks/log_events"
TEST_HEADER = "X-Webhook-Test"
EVENT_ID_HEADER = "X-Webhook-Event-Id"
KINDS_WITH_COMMENT = ("pr-opened", "discussion-opened", "comment")
KINDS_WITH_DISCUSSION = (*KINDS_WITH_COMMENT, "pr-merged")
KINDS_WITH_REF = ("commit", "new-branch", "tag")
SHA = re.compile(r"^[0-9a-f]{40}$")


def _parser() -> argparse.ArgumentParser:
    kinds = "\n".join(f"  {kind:<18} {description}" for kind, description in SAMPLE_KINDS.items())
    parser = argparse.ArgumentParser(
        prog="python -m lib.send",
        description="Post a realistic Hub webhook event to a running app and print its answer.",
        epilog=f"kinds:\n{kinds}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("kind", nargs="?", choices=list(SAMPLE_KINDS), metavar="KIND", help="the event to send")
    parser.add_argument("--file", type=Path, help="send this JSON payload instead of a sample")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the endpoint (default {DEFAULT_URL})")
    parser.add_argument("--to", metavar="HANDLER", help="shortcut for the path /webhooks/HANDLER on --url's host")
    parser.add_argument("--secret", help="the app's webhook secret (default: WEBHOOK_SECRET, from the env or .env)")
    parser.add_argument("--repo", default="my-user/my-model", help="the repo of a sample (owner/name)")
    parser.add_argument("--repo-type", choices=REPO_TYPES, default="model", help="the repo type of a sample")
    parser.add_argument("--comment", help=f"the comment text of a sample ({', '.join(KINDS_WITH_COMMENT)})")
    parser.add_argument(
        "--discussion", type=int, metavar="NUM", help="the discussion number of a sample (to answer a real one)"
    )
    parser.add_argument("--sha", help=f"the new commit of a sample ({', '.join(KINDS_WITH_REF)}): a real one to read")
    parser.add_argument("--webhook-id", help="a Webhook-Id header (the Hub's delivery id; resend one to test repeats)")
    parser.add_argument("--no-test-flag", action="store_true", help=f"do not mark the event as a test ({TEST_HEADER})")
    parser.add_argument("--timeout", type=float, default=35.0, help="seconds to wait for the answer (default 35)")
    return parser


def default_secret(environ: Mapping[str, str], dotenv_path: Path = Path(".env")) -> str | None:
    """WEBHOOK_SECRET from the environment, else from .env; the first one when several are set."""
    raw = environ.get("WEBHOOK_SECRET")
    if raw is None and dotenv_path.is_file():
        raw = dotenv_values(dotenv_path).get("WEBHOOK_SECRET")
    if not raw:
        return None
    return raw.split(",")[0].strip() or None


def target_url(url: str, handler: str | None) -> str:
    """`url`, or its scheme and host with the path `/webhooks/<handler>`."""
    if handler is None:
        return url
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/webhooks/{handler.strip('/')}", "", ""))


def build_body(args: argparse.Namespace, parser: argparse.ArgumentParser) -> bytes:
    if args.file is not None:
        if args.kind or args.comment or args.discussion is not None or args.sha:
            parser.error("give either a KIND or --file, not both (--comment, --discussion, --sha apply to a KIND)")
        try:
            return args.file.read_bytes()
        except OSError as exc:
            parser.error(f"cannot read {args.file}: {exc.strerror}")
    if args.kind is None:
        parser.error("say what to send: a KIND (see the list below) or --file PAYLOAD.json")
    return json.dumps(sample(args, parser)).encode()


def sample(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The sample of `args.kind`, with the repo, comment, discussion number and commit asked for."""

    def check(option: str, kinds: tuple[str, ...]) -> None:
        if args.kind not in kinds:
            parser.error(f"{option} applies to {', '.join(kinds)}, not {args.kind}")

    overrides: dict[str, Any] = {}
    if args.comment is not None:
        check("--comment", KINDS_WITH_COMMENT)
        overrides["comment"] = {"content": args.comment}
    if args.discussion is not None:
        check("--discussion", KINDS_WITH_DISCUSSION)
        overrides["discussion"] = {"num": args.discussion}
    payload = sample_payload(args.kind, repo=args.repo, repo_type=args.repo_type, **overrides)
    if args.sha is not None:
        check("--sha", KINDS_WITH_REF)
        if not SHA.match(args.sha):
            parser.error(f"--sha must be a full commit sha (40 lowercase hex characters), got {args.sha!r}")
        ref = payload["updatedRefs"][0]
        if payload["repo"].get("headSha") == ref["newSha"]:  # main moved, or a tag on main's head
            payload["repo"]["headSha"] = args.sha
        ref["newSha"] = args.sha
    return payload


def _hint(status: int) -> str | None:
    if status == 401:
        return (
            "the app requires a webhook secret and none was sent: pass --secret, or set WEBHOOK_SECRET "
            "(environment or .env) to the app's secret."
        )
    if status == 403:
        return "the secret sent is not the app's: pass --secret, or set WEBHOOK_SECRET to the one the app uses."
    if status == 404:
        return "no endpoint at that path: endpoints are /webhooks/<handler name> (the landing page lists them)."
    return None


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Send one event; returns 0 when the app answered 2xx, else 1 (argparse errors exit 2)."""
    parser = _parser()
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    body = build_body(args, parser)
    url = target_url(args.url, args.to)
    secret = args.secret if args.secret is not None else default_secret(env)
    headers = {"content-type": "application/json"}
    if secret:
        headers["x-webhook-secret"] = secret
    if not args.no_test_flag:
        headers[TEST_HEADER] = "1"
    if args.webhook_id:
        headers["webhook-id"] = args.webhook_id

    try:
        response = httpx.post(url, content=body, headers=headers, timeout=args.timeout)
    except httpx.ConnectError:
        print(
            f"error: nothing answers at {url}: is the app running? Start it with `python app.py`, or pass --url.",
            file=sys.stderr,
        )
        return 1
    except httpx.TimeoutException:
        print(f"error: {url} did not answer within {args.timeout:g} s.", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"error: could not post to {url}: {exc}", file=sys.stderr)
        return 1

    event_id = response.headers.get(EVENT_ID_HEADER)
    print(f"HTTP {response.status_code} {response.reason_phrase}" + (f" (event {event_id})" if event_id else ""))
    try:
        print(json.dumps(response.json(), indent=2, ensure_ascii=False))
    except ValueError:
        print(response.text)
    hint = _hint(response.status_code)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    return 0 if response.is_success else 1


if __name__ == "__main__":
    sys.exit(main())
