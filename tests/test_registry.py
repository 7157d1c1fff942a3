"""Tests of lib.core.registry: `handlers/<name>.py` becoming `POST /webhooks/<name>`, and broken modules
stopping the start with the file named and the fix (unit tests, then the real app process).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from apprunner import base_env, make_space

from lib.core.errors import ConfigurationError, HandlerModuleError
from lib.core.events import ALL_EVENTS, Events
from lib.core.registry import Endpoint, discover_handlers, domains_for, endpoint_from_module, webhook_path

GOOD = '''\
"""Reacts to new commits.

More text for the landing page.
"""
from lib import Events, WebhookPayload

EVENTS = Events(scope="repo.content")


def handle(payload: WebhookPayload):
    return {"repo": payload.repo.name}
'''
ASYNC_GOOD = '''\
"""Async one."""
from lib import WebhookPayload


async def handle(payload: WebhookPayload):
    return payload.event.action
'''


def write_handlers(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        (folder / name).write_text(textwrap.dedent(source))
    return folder


@pytest.fixture
def package(request: pytest.FixtureRequest) -> str:
    """A module namespace of its own per test, so imports from one test never leak into another."""
    return "handlers_under_test_" + "".join(c if c.isalnum() else "_" for c in request.node.name)


def discover(tmp_path: Path, package: str, files: dict[str, str]) -> list[Endpoint]:
    return discover_handlers(write_handlers(tmp_path / "handlers", files), package=package)


def refusal(tmp_path: Path, package: str, files: dict[str, str]) -> str:
    with pytest.raises(HandlerModuleError) as caught:
        discover(tmp_path, package, files)
    return str(caught.value)


# --- webhook_path ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, path",
    [
        ("say_hello", "/webhooks/say_hello"),
        ("/say_hello", "/webhooks/say_hello"),
        ("/say_hello/", "/webhooks/say_hello"),
        ("webhooks/x", "/webhooks/x"),
        ("/webhooks/x", "/webhooks/x"),
        ("team/deploy", "/webhooks/team/deploy"),
        ("a-b.c~d", "/webhooks/a-b.c~d"),
    ],
)
def test_webhook_path(name: str, path: str) -> None:
    assert webhook_path(name) == path


@pytest.mark.parametrize("name", ["", "/", "a b", "a//b", "../x", "x?y", "é"])
def test_webhook_path_refuses_what_a_url_cannot_carry(name: str) -> None:
    with pytest.raises(ValueError, match="not usable in a URL"):
        webhook_path(name)


# --- Endpoint -----------------------------------------------------------------------------------------


def test_an_endpoint_describes_itself_from_its_docstring() -> None:
    def deploy(payload):
        """Deploys the model.

        Details.
        """

    endpoint = Endpoint.create("/webhooks/deploy", deploy)
    assert (endpoint.name, endpoint.summary, endpoint.events) == ("deploy", "Deploys the model.", ALL_EVENTS)
    assert endpoint.description.endswith("Details.")


def test_an_endpoint_refuses_a_parameter_it_cannot_fill() -> None:
    def handler(payload, token):
        pass

    with pytest.raises(ConfigurationError, match="parameter 'token' cannot be supplied"):
        Endpoint.create("/webhooks/x", handler)


def test_an_endpoint_refuses_something_not_callable() -> None:
    with pytest.raises(ConfigurationError, match="must be a function"):
        Endpoint.create("/webhooks/x", "not a function", source="handlers/x.py")  # type: ignore[arg-type]


# --- discover_handlers: good modules ------------------------------------------------------------------


def test_each_module_becomes_an_endpoint(tmp_path: Path, package: str) -> None:
    endpoints = discover(tmp_path, package, {"new_commits.py": GOOD, "anything.py": ASYNC_GOOD})

    assert [e.path for e in endpoints] == ["/webhooks/anything", "/webhooks/new_commits"]
    anything, commits = endpoints
    assert commits.events == Events(scope="repo.content")
    assert commits.summary == "Reacts to new commits."
    assert "More text for the landing page." in commits.description
    assert commits.source == str(tmp_path / "handlers" / "new_commits.py")
    assert anything.events == ALL_EVENTS
    assert [a.kind for a in commits.arguments] == ["model"]


def test_private_modules_and_other_files_are_not_endpoints(tmp_path: Path, package: str) -> None:
    endpoints = discover(
        tmp_path,
        package,
        {
            "real.py": GOOD,
            "_helpers.py": "raise RuntimeError('never imported as an endpoint')",
            "__init__.py": "",
            "notes.txt": "not python",
            "README.md": "# docs",
        },
    )
    assert [e.path for e in endpoints] == ["/webhooks/real"]


def test_path_renames_an_endpoint(tmp_path: Path, package: str) -> None:
    endpoints = discover(tmp_path, package, {"x.py": GOOD + '\nPATH = "/team/deploy/"\n'})
    assert [e.path for e in endpoints] == ["/webhooks/team/deploy"]


def test_an_empty_folder_has_no_endpoints(tmp_path: Path, package: str) -> None:
    assert discover(tmp_path, package, {}) == []


# --- discover_handlers: broken modules stop the start, naming the file and the fix ---------------------


def test_a_syntax_error(tmp_path: Path, package: str) -> None:
    message = refusal(tmp_path, package, {"broken.py": "def handle(payload):\n    return (\n"})
    assert "broken.py" in message
    assert "syntax error" in message
    assert "line" in message
    assert "start with '_'" in message


def test_no_handle_function(tmp_path: Path, package: str) -> None:
    message = refusal(tmp_path, package, {"nohandle.py": "def handler(payload):\n    pass\n"})
    assert "nohandle.py" in message
    assert "no handle() function" in message
    assert "def handle(payload: WebhookPayload)" in message


def test_handle_that_is_not_callable(tmp_path: Path, package: str) -> None:
    message = refusal(tmp_path, package, {"notcallable.py": "handle = 42\n"})
    assert "notcallable.py" in message
    assert "no handle() function" in message


def test_an_import_error(tmp_path: Path, package: str) -> None:
    message = refusal(tmp_path, package, {"needs_pkg.py": "import package_that_is_not_installed\n" + GOOD})
    assert "needs_pkg.py" in message
    assert "ModuleNotFoundError" in message
    assert "package_that_is_not_installed" in message
    assert "inside handle()" in message


def test_an_exception_at_import(tmp_path: Path, package: str) -> None:
    message = refusal(tmp_path, package, {"crashes.py": "TOKEN = {}['HF_TOKEN']\n" + GOOD})
    assert "crashes.py" in message
    assert "KeyError" in message


def test_events_that_is_not_an_events(tmp_path: Path, package: str) -> None:
    message = refusal(tmp_path, package, {"bad_events.py": 'EVENTS = "repo.content"\ndef handle(payload): pass\n'})
    assert "bad_events.py" in message
    assert "EVENTS must be an Events(...)" in message
    assert "got str" in message


@pytest.mark.parametrize(
    "declaration, fragment",
    [
        ("Events(scope=[])", "Events(scope=[]) can never match"),
        ('Events(repo_type="modle")', "repo_type='modle'"),
        ('Events(scope="repo.content", action="create")', "action='create'"),
    ],
)
def test_events_that_can_never_match(tmp_path: Path, package: str, declaration: str, fragment: str) -> None:
    source = f"from lib import Events\nEVENTS = {declaration}\ndef handle(payload): pass\n"
    message = refusal(tmp_path, package, {"never.py": source})
    assert "never.py" in message
    assert fragment in message


def test_two_modules_claiming_one_path(tmp_path: Path, package: str) -> None:
    message = refusal(tmp_path, package, {"one.py": GOOD + 'PATH = "x"\n', "two.py": GOOD + 'PATH = "x"\n'})
    assert "one.py" in message
    assert "two.py" in message
    assert "/webhooks/x" in message
    assert "change PATH in one" in message


def test_a_module_name_with_a_dash(tmp_path: Path, package: str) -> None:
    message = refusal(tmp_path, package, {"my-handler.py": GOOD})
    assert "my-handler.py" in message
    assert "rename it to my_handler.py" in message


@pytest.mark.parametrize("value", ['"a b"', '"../up"', "5"])
def test_a_path_that_is_not_usable(tmp_path: Path, package: str, value: str) -> None:
    message = refusal(tmp_path, package, {"badpath.py": GOOD + f"PATH = {value}\n"})
    assert "badpath.py" in message
    assert "PATH =" in message


def test_a_handle_parameter_that_cannot_be_filled(tmp_path: Path, package: str) -> None:
    message = refusal(tmp_path, package, {"params.py": "def handle(payload, hf_token):\n    pass\n"})
    assert "params.py" in message
    assert "'hf_token'" in message


def test_a_missing_folder(tmp_path: Path, package: str) -> None:
    with pytest.raises(HandlerModuleError, match="does not exist"):
        discover_handlers(tmp_path / "nope", package=package)


def test_a_broken_module_does_not_linger_in_sys_modules(tmp_path: Path, package: str) -> None:
    refusal(tmp_path, package, {"gone.py": "1/0\n"})
    assert f"{package}.gone" not in sys.modules


def test_handler_module_errors_are_configuration_errors() -> None:
    assert issubclass(HandlerModuleError, ConfigurationError)


def test_endpoint_from_module_on_one_file(tmp_path: Path, package: str) -> None:
    folder = write_handlers(tmp_path / "h", {"solo.py": ASYNC_GOOD})
    endpoint = endpoint_from_module(folder / "solo.py", package=package)
    assert (endpoint.path, endpoint.summary) == ("/webhooks/solo", "Async one.")


def test_domains_for_several_endpoints() -> None:
    def f(payload):
        pass

    endpoints = [
        Endpoint.create("/webhooks/a", f, events=Events(scope="discussion")),
        Endpoint.create("/webhooks/b", f, events=Events(scope="repo.content")),
        Endpoint.create("/webhooks/c", f, events=Events(scope="discussion.comment")),
    ]
    assert domains_for(endpoints) == ["discussion", "repo"]
    assert domains_for([]) == []


# --- the real app refuses to start ------------------------------------------------------------------


BROKEN_SPACES = {
    "syntax error": {"fine.py": GOOD, "typo.py": "def handle(payload)\n    return 1\n"},
    "one path twice": {"first.py": GOOD + 'PATH = "deploy"\n', "second.py": GOOD + 'PATH = "deploy"\n'},
}


def run_app(folder: Path, handlers: dict[str, str]) -> subprocess.CompletedProcess[str]:
    space = make_space(folder / "space", handlers)
    return subprocess.run(
        [sys.executable, "app.py"],
        cwd=space,
        env=base_env(folder / "data", GRADIO_SERVER_PORT="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def failed_starts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The output of `python app.py` for each broken Space, run side by side; each must have exited non-zero."""
    with ThreadPoolExecutor(len(BROKEN_SPACES)) as pool:
        runs = {
            name: pool.submit(run_app, tmp_path_factory.mktemp("broken"), handlers)
            for name, handlers in BROKEN_SPACES.items()
        }
    outputs = {}
    for name, future in runs.items():
        result = future.result()
        outputs[name] = result.stdout + result.stderr
        assert result.returncode != 0, outputs[name]
    return outputs


def test_the_app_does_not_start_with_a_syntax_error_in_a_handler(failed_starts: dict[str, str]) -> None:
    output = failed_starts["syntax error"]
    assert "handlers/typo.py, line 1: syntax error" in output
    assert "Webhooks are correctly setup" not in output


def test_the_app_does_not_start_with_two_modules_on_one_path(failed_starts: dict[str, str]) -> None:
    output = failed_starts["one path twice"]
    assert "handlers/first.py" in output
    assert "handlers/second.py" in output
    assert "both claim /webhooks/deploy; change PATH in one" in output


def test_a_handler_takes_the_payload_unless_it_asks_only_for_the_request_or_nothing() -> None:
    from fastapi import Request

    from lib import WebhookPayload

    def no_parameter() -> None: ...

    def request_only(request: Request) -> None: ...

    def request_by_name(request) -> None: ...

    def payload(payload: WebhookPayload) -> None: ...

    def as_dict(event: dict) -> None: ...

    def first_positional(event) -> None: ...

    takes = {
        func.__name__: Endpoint.create("/webhooks/x", func).takes_payload
        for func in (no_parameter, request_only, request_by_name, payload, as_dict, first_positional)
    }
    assert takes == {
        "no_parameter": False,
        "request_only": False,
        "request_by_name": False,
        "payload": True,
        "as_dict": True,
        "first_positional": True,
    }
