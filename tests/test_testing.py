"""`lib.testing.run_handler`: what the server would do with one event, without the server.

Each test writes a handler module to a temporary folder, as a user would in handlers/, and checks
that it is loaded, filtered, given its arguments and judged as the server does.
"""

from __future__ import annotations

import json
import textwrap
import threading
from pathlib import Path

import pytest

from lib.core.errors import HandlerModuleError, HandlerRefused, MalformedPayload
from lib.testing import run_handler, run_handler_async

FIXTURE = Path(__file__).parent / "fixtures" / "discussion-create-pr-opened.json"


def module(tmp_path: Path, source: str, name: str = "my_handler") -> Path:
    file = tmp_path / "handlers" / f"{name}.py"
    file.parent.mkdir(exist_ok=True)
    file.write_text(textwrap.dedent(source))
    return file


def test_arguments_are_injected_by_name_and_type_as_the_server_does(tmp_path: Path) -> None:
    file = module(
        tmp_path,
        """
        from fastapi import BackgroundTasks, Request
        from lib import WebhookPayload

        DONE = []

        async def handle(payload: WebhookPayload, request: Request, raw: dict, background_tasks: BackgroundTasks):
            background_tasks.add_task(DONE.append, "background ran")
            body = await request.json()
            return {"scope": payload.event.scope, "same": body == raw, "path": request.url.path, "done": DONE}
        """,
    )
    run = run_handler(file, FIXTURE)
    assert run.ok, run.error
    assert run.result == {
        "scope": "discussion",
        "same": True,
        "path": "/webhooks/my_handler",
        "done": ["background ran"],
    }


def test_the_first_parameter_gets_the_payload_whatever_its_name(tmp_path: Path) -> None:
    file = module(tmp_path, "def handle(event):\n    return event.repo.name\n")
    assert run_handler(file, "commit", repo="a/b").result == "a/b"


def test_a_plain_def_runs_on_a_thread_of_its_own(tmp_path: Path) -> None:
    file = module(tmp_path, "import threading\ndef handle(payload):\n    return threading.current_thread().name\n")
    assert run_handler(file, "commit").result != threading.current_thread().name


def test_events_filters_as_on_the_server(tmp_path: Path) -> None:
    file = module(
        tmp_path,
        "from lib import Events\nEVENTS = Events(scope='repo.content', repo='my-org/*')\n"
        "def handle(payload):\n    raise AssertionError('must not run')\n",
    )
    run = run_handler(file, "commit", repo="someone/else")
    assert run.skipped and run.reason == "repo 'someone/else' matches none of ['my-org/*']" and run.error is None
    assert (
        run_handler(file, "comment", repo="my-org/x").reason
        == "scope 'discussion.comment' is not one of ['repo.content']"
    )


def test_a_handler_that_raises_is_a_failure_not_an_exception_in_the_test(tmp_path: Path) -> None:
    file = module(tmp_path, "def handle(payload):\n    raise ValueError('broken')\n")
    run = run_handler(file, "commit")
    assert not run.ok and isinstance(run.error, ValueError) and str(run.error) == "broken"


@pytest.mark.parametrize("status, ok", [(200, True), (204, True), (404, False), (500, False), (302, False)])
def test_a_returned_response_with_a_non_2xx_status_is_a_failure(tmp_path: Path, status: int, ok: bool) -> None:
    file = module(
        tmp_path,
        f"from fastapi import Response\ndef handle(payload):\n    return Response('x', status_code={status})\n",
    )
    run = run_handler(file, "commit")
    assert run.ok is ok
    if ok:
        assert run.stored == {"status_code": status, "body": "x"}
    else:
        assert isinstance(run.error, HandlerRefused) and f"HTTP {status}" in str(run.error)


def test_a_result_that_is_not_json_is_stored_as_its_repr(tmp_path: Path) -> None:
    file = module(
        tmp_path,
        "class Thing:\n    def __repr__(self):\n        return 'Thing()'\n"
        "def handle(payload):\n    return {'nan': float('nan')}, Thing()\n",
    )
    run = run_handler(file, "commit")
    assert run.ok and run.stored == "({'nan': nan}, Thing())"
    json.dumps(run.stored)


@pytest.mark.parametrize("kind", ["def", "async def"])
def test_a_handler_past_its_timeout_fails(tmp_path: Path, kind: str) -> None:
    sleep = "await asyncio.sleep(5)" if kind == "async def" else "time.sleep(1)"
    file = module(tmp_path, f"import asyncio, time\n{kind} handle(payload):\n    {sleep}\n")
    run = run_handler(file, "commit", timeout=0.2)
    assert isinstance(run.error, TimeoutError)


def test_a_payload_the_server_would_refuse_raises(tmp_path: Path) -> None:
    file = module(tmp_path, "def handle(payload):\n    return 1\n")
    with pytest.raises(MalformedPayload, match="not a Hub webhook payload"):
        run_handler(file, {"event": {"action": "create"}})
    with pytest.raises(MalformedPayload, match="not valid JSON"):
        run_handler(file, b"{nope")


def test_payload_sources_and_their_mistakes(tmp_path: Path) -> None:
    file = module(tmp_path, "def handle(payload: dict):\n    return payload['repo']['name']\n")
    assert run_handler(file, json.loads(FIXTURE.read_text())).result == "openai-community/gpt2"
    assert run_handler(file, str(FIXTURE)).result == "openai-community/gpt2"
    assert run_handler(file, FIXTURE.read_bytes()).result == "openai-community/gpt2"
    with pytest.raises(FileNotFoundError, match="neither a sample kind"):
        run_handler(file, "commmit")
    with pytest.raises(TypeError, match="only apply to a sample kind"):
        run_handler(file, FIXTURE, repo="a/b")


def test_a_broken_module_raises_what_the_server_would_stop_with(tmp_path: Path) -> None:
    file = module(tmp_path, "def handler(payload):\n    return 1\n")
    with pytest.raises(HandlerModuleError, match="no handle\\(\\) function"):
        run_handler(file, "commit")
    with pytest.raises(FileNotFoundError, match="No handler module"):
        run_handler(tmp_path / "missing.py", "commit")


@pytest.mark.anyio
async def test_async_tests_use_run_handler_async(tmp_path: Path) -> None:
    file = module(tmp_path, "async def handle(payload):\n    return 'ok'\n")
    assert (await run_handler_async(file, "commit")).result == "ok"
    with pytest.raises(RuntimeError, match="run_handler_async"):
        run_handler(file, "commit")


def test_a_module_name_is_looked_up_in_the_handlers_folder() -> None:
    assert (
        run_handler("log_events", "repo-created", repo="a/b")
        .result["summary"]
        .startswith("repo/create on a/b (model) at ")
    )
    with pytest.raises(FileNotFoundError, match=r"handlers/nope\.py"):
        run_handler("nope", "commit")
