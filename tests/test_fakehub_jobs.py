"""Tests of the FakeHub's Jobs API (`tests/fakehub_jobs.py`), driven through the real `huggingface_hub` client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path

import fakehub
import httpx
import pytest
from fakehub import FakeHub
from fakehub_jobs import SECRET_MARK
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

fake_hub = fakehub.fake_hub  # the fixture under test

IMAGE = "python:3.12"
SCRIPT_URL = "https://example.com/train.py"


@pytest.fixture
def hub(fake_hub: FakeHub) -> FakeHub:
    """The fake with alice (member of org `lab`), bob, and carol who has a read token."""
    fake_hub.add_user("alice", "hf_alice", orgs=["lab"])
    fake_hub.add_user("bob", "hf_bob")
    fake_hub.add_user("carol", "hf_carol_read", role="read", orgs=["lab"])
    return fake_hub


def api_for(hub: FakeHub, token: str | bool = "hf_alice") -> HfApi:
    return HfApi(endpoint=hub.url, token=token)


def launch(hub: FakeHub, **kwargs: object) -> str:
    """Launch a small job as alice; returns its id."""
    kwargs = {"image": IMAGE, "command": ["python", "-c", "print(1)"], "namespace": "alice", **kwargs}
    return api_for(hub).run_job(**kwargs).id  # type: ignore[arg-type]


def wait_for_requests(hub: FakeHub, path: str, count: int, timeout: float = 20) -> None:
    """Wait until the fake answered `count` GET requests on paths matching `path`."""
    deadline = time.monotonic() + timeout
    while len(hub.find_requests("GET", path)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} GET {path} within {timeout}s"
        time.sleep(0.02)


def status_of(call: object) -> int:
    with pytest.raises(HfHubHTTPError) as caught:
        call()  # type: ignore[operator]
    return caught.value.response.status_code


# --------------------------------------------------------------------------------------------------------
# Launching
# --------------------------------------------------------------------------------------------------------


def test_run_job_stores_the_spec_and_answers_a_job_info_without_secret_values(hub: FakeHub) -> None:
    info = api_for(hub).run_job(
        image=IMAGE,
        command=["python", "train.py"],
        env={"EPOCHS": "3"},
        secrets={"HF_TOKEN": "hf_alice"},
        flavor="t4-small",
        timeout="5m",
        attempts=2,
        labels={"event": "abc-123"},
        namespace="alice",
    )

    job = hub.jobs.get(info.id)
    assert (job.docker_image, job.command, job.flavor) == (IMAGE, ["python", "train.py"], "t4-small")
    assert (job.environment, job.secrets) == ({"EPOCHS": "3"}, {"HF_TOKEN": "hf_alice"})
    assert (job.timeout_seconds, job.attempts, job.labels["event"]) == (300, 2, "abc-123")
    assert job.labels["name"].startswith("python-3-12-")  # the client's default name travels as a label
    assert (info.status.stage, info.docker_image, info.flavor, info.retry) == ("SCHEDULING", IMAGE, "t4-small", 1)
    assert info.secrets == {"HF_TOKEN": SECRET_MARK}
    assert info.environment == {"EPOCHS": "3"} and info.labels == job.labels
    assert (info.owner.name, info.owner.type, info.initiator.name) == ("alice", "user", "alice")
    assert info.url == f"{hub.url}/jobs/alice/{info.id}"
    assert info.created_at is not None and info.started_at is None and info.finished_at is None
    assert len(hub.jobs) == 1 and [j.id for j in hub.jobs] == [info.id]


def test_a_space_image_is_sent_as_space_id_and_org_namespaces_are_allowed_to_members(hub: FakeHub) -> None:
    info = api_for(hub).run_job(image="hf.co/spaces/lab/env", command=["run"], namespace="lab")

    assert (info.space_id, info.docker_image, info.owner.name, info.owner.type) == ("lab/env", None, "lab", "org")
    assert hub.jobs.get(info.id).namespace == "lab"


@pytest.mark.filterwarnings("ignore:.*run_uv_job. is experimental")
def test_run_uv_job_with_a_script_url_or_a_command_launches_uv_run(hub: FakeHub) -> None:
    api = api_for(hub)
    by_url = api.run_uv_job(SCRIPT_URL, script_args=["--epochs", "1"], dependencies=["pandas"], namespace="alice")
    by_command = api.run_uv_job("python", script_args=["-c", "print(1)"], namespace="alice")

    url_job, command_job = hub.jobs.get(by_url.id), hub.jobs.get(by_command.id)
    assert url_job.command == ["uv", "run", "--with", "pandas", SCRIPT_URL, "--epochs", "1"]
    assert url_job.docker_image == "ghcr.io/astral-sh/uv:python3.12-bookworm"
    assert url_job.labels["name"].startswith("train-")
    assert command_job.command == ["uv", "run", "python", "-c", "print(1)"]


@pytest.mark.filterwarnings("ignore:.*run_uv_job. is experimental")
def test_run_uv_job_with_a_local_script_needs_buckets_which_the_fake_refuses_clearly(
    hub: FakeHub, tmp_path: Path
) -> None:
    script = tmp_path / "train.py"
    script.write_text("print('training')\n")

    assert status_of(lambda: api_for(hub).run_uv_job(str(script), namespace="alice")) == 501
    assert len(hub.jobs) == 0
    assert hub.find_requests("POST", r"^/api/buckets/")[0].status == 501


def test_bad_specs_are_400_and_store_nothing(hub: FakeHub) -> None:
    assert status_of(lambda: launch(hub, flavor="tpu-giant")) == 400
    assert status_of(lambda: launch(hub, labels={"event": "repo/name:sha"})) == 400
    assert status_of(lambda: launch(hub, labels={"k" * 101: "v"})) == 400
    raw = httpx.post(
        f"{hub.url}/api/jobs/alice",
        json={"command": ["x"], "flavor": "cpu-basic"},
        headers={"authorization": "Bearer hf_alice"},
    )
    assert raw.status_code == 400 and "dockerImage" in raw.json()["error"]
    assert len(hub.jobs) == 0


# --------------------------------------------------------------------------------------------------------
# Namespace, access, unknown ids
# --------------------------------------------------------------------------------------------------------


def test_the_namespace_defaults_to_the_token_user_through_whoami(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    # `list_jobs` resolves its default namespace with the module-level `whoami`, which reads the token from
    # the environment (HF_TOKEN), not from the HfApi instance: as in the app process.
    monkeypatch.setenv("HF_TOKEN", "hf_alice")
    api = HfApi(endpoint=hub.url)

    job_id = api.run_job(image=IMAGE, command=["true"]).id

    assert hub.jobs.get(job_id).namespace == "alice"
    assert api.inspect_job(job_id=job_id).id == job_id
    assert [j.id for j in api.list_jobs()] == [job_id]
    assert hub.find_requests("GET", r"^/api/whoami-v2$")


def test_a_child_process_reaches_the_jobs_api_through_hf_endpoint(hub: FakeHub) -> None:
    code = textwrap.dedent(
        """
        import json
        from huggingface_hub import inspect_job, list_jobs, run_job

        job = run_job(image="python:3.12", command=["true"], labels={"event": "e1"})
        found = [j.id for j in list_jobs(labels={"event": "e1"})]
        print(json.dumps({"id": job.id, "found": found, "stage": inspect_job(job_id=job.id).status.stage}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **hub.client_env(token="hf_alice")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == {"id": result["id"], "found": [result["id"]], "stage": "SCHEDULING"}
    assert hub.jobs.get(result["id"]).namespace == "alice"


def test_strangers_read_tokens_and_anonymous_callers_are_refused(hub: FakeHub) -> None:
    job_id = launch(hub)
    bob, carol, anonymous = api_for(hub, "hf_bob"), api_for(hub, "hf_carol_read"), api_for(hub, False)

    assert status_of(lambda: bob.run_job(image=IMAGE, command=["x"], namespace="alice")) == 403
    assert status_of(lambda: list(bob.list_jobs(namespace="alice"))) == 403
    assert status_of(lambda: bob.inspect_job(job_id=job_id, namespace="alice")) == 403
    assert status_of(lambda: bob.cancel_job(job_id=job_id, namespace="alice")) == 403
    assert status_of(lambda: list(bob.fetch_job_logs(job_id=job_id, namespace="alice"))) == 403
    assert status_of(lambda: bob.update_job_labels(job_id=job_id, labels={"a": "b"}, namespace="alice")) == 403
    assert status_of(lambda: bob.inspect_job(job_id=job_id, namespace="bob")) == 404  # not in bob's namespace
    assert status_of(lambda: carol.run_job(image=IMAGE, command=["x"], namespace="lab")) == 403
    assert status_of(lambda: carol.cancel_job(job_id=job_id, namespace="alice")) == 403  # not her namespace
    assert list(carol.list_jobs(namespace="lab")) == []  # a read token may look
    assert status_of(lambda: anonymous.inspect_job(job_id=job_id, namespace="alice")) == 401
    assert status_of(lambda: api_for(hub, "hf_nobody").inspect_job(job_id=job_id, namespace="alice")) == 401
    assert len(hub.jobs) == 1 and hub.jobs.get(job_id).stage == "SCHEDULING" and "a" not in hub.jobs.get(job_id).labels


def test_an_unknown_job_is_404_on_every_route(hub: FakeHub) -> None:
    api = api_for(hub)
    unknown = "0" * 24

    assert status_of(lambda: api.inspect_job(job_id=unknown, namespace="alice")) == 404
    assert status_of(lambda: api.cancel_job(job_id=unknown, namespace="alice")) == 404
    assert status_of(lambda: list(api.fetch_job_logs(job_id=unknown, namespace="alice"))) == 404
    assert status_of(lambda: api.update_job_labels(job_id=unknown, labels={"a": "b"}, namespace="alice")) == 404
    with pytest.raises(KeyError):
        hub.jobs.set_stage(unknown, "RUNNING")


# --------------------------------------------------------------------------------------------------------
# Listing
# --------------------------------------------------------------------------------------------------------


def test_list_filters_by_every_label_and_by_stages(hub: FakeHub) -> None:
    a = launch(hub, labels={"event": "e1", "repo": "r1"})
    b = launch(hub, labels={"event": "e2", "repo": "r1"})
    c = launch(hub, labels={"event": "e1", "repo": "r2"})
    api_for(hub).run_job(image=IMAGE, command=["x"], labels={"event": "e1", "repo": "r1"}, namespace="lab")
    hub.jobs.set_stage(b, "RUNNING")
    hub.jobs.set_stage(c, "ERROR", message="boom")
    api = api_for(hub)

    def ids(**kwargs: object) -> list[str]:
        return [j.id for j in api.list_jobs(namespace="alice", **kwargs)]  # type: ignore[arg-type]

    assert ids() == [c, b, a]  # newest first, other namespaces excluded
    assert ids(labels={"event": "e1"}) == [c, a]
    assert ids(labels={"event": "e1", "repo": "r1"}) == [a]
    assert ids(labels={"event": "e3"}) == []
    assert ids(status="RUNNING") == [b]
    assert ids(status=["SCHEDULING", "ERROR"]) == [c, a]
    assert ids(status="RUNNING", labels={"repo": "r1"}) == [b]
    assert status_of(lambda: ids(status="SLEEPING")) == 400


def test_list_paginates_with_a_link_header(hub: FakeHub) -> None:
    hub.jobs.page_size = 2
    launched = [launch(hub, labels={"batch": "x"}) for _ in range(5)]
    launch(hub, labels={"batch": "y"})
    hub.clear_requests()

    listed = [j.id for j in api_for(hub).list_jobs(labels={"batch": "x"}, namespace="alice")]

    assert listed == launched[::-1]
    pages = hub.find_requests("GET", r"^/api/jobs/alice$")
    assert len(pages) == 3
    assert [p.query.get("cursor") for p in pages] == [None, ["2"], ["4"]]
    assert all(p.query["label"] == ["batch=x"] for p in pages)


# --------------------------------------------------------------------------------------------------------
# Stages, cancel, labels, hardware
# --------------------------------------------------------------------------------------------------------


def test_stage_changes_made_by_the_test_are_what_the_client_sees(hub: FakeHub) -> None:
    api = api_for(hub)
    job_id = launch(hub)
    created = hub.jobs.get(job_id).created_at

    hub.jobs.set_stage(job_id, "RUNNING", at=created + timedelta(seconds=5))
    running = api.inspect_job(job_id=job_id, namespace="alice")
    hub.jobs.set_stage(job_id, "ERROR", message="CUDA out of memory", at=created + timedelta(seconds=65))
    failed = api.inspect_job(job_id=job_id, namespace="alice")

    assert running.status.stage == "RUNNING" and running.finished_at is None
    assert running.started_at == (created + timedelta(seconds=5)).replace(microsecond=running.started_at.microsecond)
    assert (failed.status.stage, failed.status.message) == ("ERROR", "CUDA out of memory")
    assert failed.finished_at is not None and failed.finished_at > failed.started_at
    assert failed.durations is not None
    assert (failed.durations.scheduling_secs, failed.durations.running_secs, failed.durations.total_secs) == (5, 60, 65)
    with pytest.raises(ValueError, match="stage must be one of"):
        hub.jobs.set_stage(job_id, "PAUSED")


def test_a_job_that_fails_while_scheduling_never_started(hub: FakeHub) -> None:
    job_id = launch(hub)
    hub.jobs.set_stage(job_id, "ERROR", message="no capacity")

    info = api_for(hub).inspect_job(job_id=job_id, namespace="alice")

    assert info.started_at is None and info.finished_at is not None
    assert info.durations is not None and info.durations.running_secs is None


def test_cancel_cancels_a_running_job_and_leaves_a_finished_one_alone(hub: FakeHub) -> None:
    api = api_for(hub)
    running, done = launch(hub), launch(hub)
    hub.jobs.set_stage(running, "RUNNING")
    hub.jobs.set_stage(done, "COMPLETED")

    api.cancel_job(job_id=running, namespace="alice")
    api.cancel_job(job_id=running, namespace="alice")  # again: no-op
    api.cancel_job(job_id=done, namespace="alice")

    assert api.inspect_job(job_id=running, namespace="alice").status.stage == "CANCELED"
    assert hub.jobs.get(running).finished_at is not None
    assert api.inspect_job(job_id=done, namespace="alice").status.stage == "COMPLETED"


def test_update_job_labels_replaces_them_and_validates(hub: FakeHub) -> None:
    api = api_for(hub)
    job_id = launch(hub, labels={"event": "e1"})

    info = api.update_job_labels(job_id=job_id, labels={"event": "e2", "state": "superseded"}, namespace="alice")

    assert info.labels == hub.jobs.get(job_id).labels == {"event": "e2", "state": "superseded"}
    assert [j.id for j in api.list_jobs(labels={"event": "e2"}, namespace="alice")] == [job_id]
    assert status_of(lambda: api.update_job_labels(job_id=job_id, labels={"bad": "a b"}, namespace="alice")) == 400
    assert hub.jobs.with_labels(event="e2")[0].id == job_id


def test_hardware_lists_flavors_with_prices(hub: FakeHub) -> None:
    hardware = {h.name: h for h in api_for(hub).list_jobs_hardware()}

    assert {"cpu-basic", "cpu-upgrade", "t4-small", "a10g-small", "a100-large"} <= set(hardware)
    assert hardware["cpu-basic"].accelerator is None and hardware["cpu-basic"].unit_cost_usd > 0
    assert hardware["a100-large"].accelerator is not None and hardware["a100-large"].unit_label == "minute"


# --------------------------------------------------------------------------------------------------------
# Logs
# --------------------------------------------------------------------------------------------------------


def test_fetch_job_logs_returns_what_exists_and_tail_keeps_the_last_lines(hub: FakeHub) -> None:
    api = api_for(hub)
    job_id = launch(hub)
    assert list(api.fetch_job_logs(job_id=job_id, namespace="alice")) == []

    hub.jobs.add_logs(job_id, "epoch 1", "epoch 2", "epoch 3")

    assert list(api.fetch_job_logs(job_id=job_id, namespace="alice")) == ["epoch 1", "epoch 2", "epoch 3"]
    assert list(api.fetch_job_logs(job_id=job_id, tail=2, namespace="alice")) == ["epoch 2", "epoch 3"]
    assert list(api.fetch_job_logs(job_id=job_id, tail=10, namespace="alice")) == ["epoch 1", "epoch 2", "epoch 3"]
    stamps = [ts for ts, _ in hub.jobs.get(job_id).logs]
    assert stamps == sorted(set(stamps))  # strictly increasing, as the client's dedup expects


def test_a_long_log_is_read_whole_and_its_tail_is_the_last_lines(hub: FakeHub) -> None:
    api = api_for(hub)
    job_id = launch(hub)
    lines = [f"step {i}" for i in range(5000)]
    hub.jobs.add_logs(job_id, *lines)
    hub.jobs.set_stage(job_id, "ERROR", message="diverged")

    assert list(api.fetch_job_logs(job_id=job_id, namespace="alice")) == lines
    assert list(api.fetch_job_logs(job_id=job_id, tail=3, namespace="alice")) == lines[-3:]
    assert list(api.fetch_job_logs(job_id=job_id, tail=0, namespace="alice")) == []


def test_following_logs_yields_new_lines_once_and_stops_when_the_job_ends(hub: FakeHub) -> None:
    api = api_for(hub)
    job_id = launch(hub)
    hub.jobs.set_stage(job_id, "RUNNING")
    hub.jobs.add_logs(job_id, "a", "b", "c")
    followed: list[str] = []
    follower = threading.Thread(
        target=lambda: followed.extend(api.fetch_job_logs(job_id=job_id, follow=True, tail=2, namespace="alice"))
    )

    follower.start()
    wait_for_requests(hub, rf"^/api/jobs/alice/{job_id}/logs$", 1)
    hub.jobs.add_logs(job_id, "d")  # sent on the open stream
    hub.jobs.set_stage(job_id, "COMPLETED")  # ends the stream; the follower sees a final stage
    follower.join(timeout=30)

    assert not follower.is_alive()
    assert followed == ["b", "c", "d"]
    assert len(hub.find_requests("GET", rf"^/api/jobs/alice/{job_id}/logs$")) == 1


def test_a_follower_whose_stream_ended_reconnects_and_skips_what_it_already_read(hub: FakeHub) -> None:
    hub.jobs.log_stream_seconds = 0.2
    api = api_for(hub)
    job_id = launch(hub)
    hub.jobs.set_stage(job_id, "RUNNING")
    hub.jobs.add_logs(job_id, "a", "b")
    followed: list[str] = []
    follower = threading.Thread(
        target=lambda: followed.extend(api.fetch_job_logs(job_id=job_id, follow=True, namespace="alice"))
    )

    follower.start()
    wait_for_requests(hub, rf"^/api/jobs/alice/{job_id}$", 1)  # the stream ended; the job still runs
    hub.jobs.add_logs(job_id, "c")  # logged while the follower sleeps before reconnecting
    wait_for_requests(hub, rf"^/api/jobs/alice/{job_id}/logs$", 2)
    hub.jobs.add_logs(job_id, "d")
    hub.jobs.set_stage(job_id, "COMPLETED")
    follower.join(timeout=30)

    assert not follower.is_alive()
    assert followed == ["a", "b", "c", "d"]


def test_reading_the_logs_of_a_running_job_without_following_ends_with_the_bounded_stream(hub: FakeHub) -> None:
    hub.jobs.log_stream_seconds = 0.5
    job_id = launch(hub)
    hub.jobs.set_stage(job_id, "RUNNING")
    hub.jobs.add_logs(job_id, "a", "b")

    started = time.monotonic()
    assert list(api_for(hub).fetch_job_logs(job_id=job_id, tail=1, namespace="alice")) == ["b"]
    assert 0.5 <= time.monotonic() - started < 5


def test_following_the_logs_of_a_finished_job_returns_at_once(hub: FakeHub) -> None:
    job_id = launch(hub)
    hub.jobs.add_logs(job_id, "done")
    hub.jobs.set_stage(job_id, "COMPLETED")

    started = time.monotonic()
    assert list(api_for(hub).fetch_job_logs(job_id=job_id, follow=True, namespace="alice")) == ["done"]
    assert time.monotonic() - started < 5


# --------------------------------------------------------------------------------------------------------
# Making the run route misbehave
# --------------------------------------------------------------------------------------------------------


def test_refused_runs_store_nothing_until_allowed_again(hub: FakeHub) -> None:
    hub.jobs.refuse_runs(402, "You need credits")

    with pytest.raises(HfHubHTTPError, match="You need credits") as caught:
        launch(hub)
    assert caught.value.response.status_code == 402 and len(hub.jobs) == 0

    hub.jobs.allow_runs()
    assert hub.jobs.get(launch(hub)).stage == "SCHEDULING"


def test_a_failed_answer_after_accepting_leaves_a_job_that_its_label_finds(hub: FakeHub) -> None:
    hub.jobs.fail_run_responses(504)

    assert status_of(lambda: launch(hub, labels={"event": "e1"})) == 504

    (job,) = hub.jobs.all()
    found = list(api_for(hub).list_jobs(labels={"event": "e1"}, namespace="alice"))
    assert [j.id for j in found] == [job.id]


def test_a_held_answer_is_sent_once_allowed_and_does_not_block_other_calls(hub: FakeHub) -> None:
    hub.jobs.hold_run_responses()
    answers: list[str] = []
    caller = threading.Thread(target=lambda: answers.append(launch(hub, labels={"event": "e1"})))

    caller.start()
    (job,) = hub.jobs.wait_for_launches(1)
    time.sleep(0.3)
    assert caller.is_alive() and answers == []
    assert api_for(hub).inspect_job(job_id=job.id, namespace="alice").id == job.id  # the server still answers

    hub.jobs.allow_runs()
    caller.join(timeout=10)
    assert answers == [job.id]


def test_a_caller_killed_while_its_answer_is_held_leaves_exactly_one_job(hub: FakeHub) -> None:
    code = textwrap.dedent(
        """
        from huggingface_hub import run_job

        job = run_job(image="python:3.12", command=["true"], labels={"event": "e1"})
        print("answered", job.id, flush=True)
        """
    )
    hub.jobs.hold_run_responses()
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, **hub.client_env(token="hf_alice")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        (job,) = hub.jobs.wait_for_launches(1, timeout=60)
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    assert child.returncode == -signal.SIGKILL and "answered" not in out
    hub.jobs.allow_runs()
    assert [j.id for j in api_for(hub).list_jobs(labels={"event": "e1"}, namespace="alice")] == [job.id]
    assert len(hub.jobs) == 1


def test_wait_for_launches_times_out_with_a_clear_message(hub: FakeHub) -> None:
    with pytest.raises(TimeoutError, match="0 job"):
        hub.jobs.wait_for_launches(1, timeout=0.1)
