"""The Hub Jobs example handlers end to end: the real app with the project's handlers and `jobs/` scripts,
real HTTP posts of Hub payloads, and the fake Hub's Jobs API, where the test plays the Hub's compute.

"Playing the Hub" is literal: the job's own command, environment and secrets, exactly as the app sent
them to the Hub, run in a shell here (with a `uv` that runs this Python, since uv is not installed;
the script's dependencies, huggingface_hub and numpy, are in the venv). Its output becomes the job's
logs on the fake Hub and its exit code the job's final stage. So a dataset commit goes all the way:
the handler launches `jobs/train.py`, the script downloads the CSV and pushes a model to the fake Hub,
the app's follower sees the job end, and `on_job_end` opens the discussion a person would read.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from apprunner import RunningApp, running_app, wait_until
from fakehub import FakeHub
from test_bulkhead_and_crash_loop import Console as ConsoleOverHttp

from lib.core.sample_events import sample_payload

FINISHED = ("succeeded", "skipped", "duplicate", "failed", "dead", "job_running")
UV_STAND_IN = f"""#!/bin/sh
# `uv run [--with X]... [--python V] SCRIPT ARGS...`, run by the test's Python (uv is not installed here).
[ "$1" = run ] && shift
while [ $# -gt 0 ]; do case "$1" in --with|--python) shift 2;; *) break;; esac; done
exec {sys.executable} "$@"
"""


def houses_csv(rows: int = 30) -> str:
    lines = ["rooms,area,price"] + [
        f"{1 + i % 5},{30 + i * 7 % 60},{2 * (1 + i % 5) + 0.1 * (30 + i * 7 % 60)}" for i in range(rows)
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def bot(hub: FakeHub) -> str:
    return hub.add_user("bot", orgs=["acme"])


@pytest.fixture(scope="module")
def app(hub: FakeHub, bot: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    folder = tmp_path_factory.mktemp("jobs-examples")
    with running_app(
        folder,
        handlers=None,  # the project's own handlers/, and its jobs/ scripts
        HF_ENDPOINT=hub.url,
        HF_TOKEN=bot,
        HF_HOME=str(folder / "hf_home"),
        NO_PROXY="127.0.0.1,localhost",
        WEBHOOK_MAX_ATTEMPTS="2",
        WEBHOOK_JOB_POLL_MIN="0.2",
        WEBHOOK_JOB_POLL_MAX="0.5",
        TRAIN_EPOCHS="500",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def compute(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder standing in for a job's machine: a `uv` on its PATH."""
    folder = tmp_path_factory.mktemp("compute")
    uv = folder / "bin" / "uv"
    uv.parent.mkdir()
    uv.write_text(UV_STAND_IN)
    uv.chmod(uv.stat().st_mode | stat.S_IXUSR)
    return folder


def run_like_the_hub(hub: FakeHub, job_id: str, compute: Path) -> int:
    """Run the job's command with its environment and secrets; its output becomes its logs, its exit its stage."""
    job = hub.jobs.get(job_id)
    hub.jobs.set_stage(job_id, "RUNNING")
    env = {
        "PATH": f"{compute / 'bin'}:{os.environ['PATH']}",
        "HOME": str(compute),
        "HF_HOME": str(compute / f"hf_home_{job_id}"),
        "HF_ENDPOINT": hub.url,  # on the Hub, the job talks to the Hub
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        **job.environment,
        **job.secrets,
    }
    done = subprocess.run([*job.command, *job.arguments], env=env, capture_output=True, text=True, timeout=120)
    hub.jobs.add_logs(job_id, *(done.stdout + done.stderr).splitlines())
    if done.returncode == 0:
        hub.jobs.set_stage(job_id, "COMPLETED")
    else:
        hub.jobs.set_stage(job_id, "ERROR", message=f"Job failed with exit code: {done.returncode}")
    return done.returncode


def journal(app: RunningApp, sql: str, *args: Any) -> list[dict[str, Any]]:
    db = sqlite3.connect(f"file:{app.data_dir / 'journal.sqlite3'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute(sql, args)]
    finally:
        db.close()


def event(app: RunningApp, event_id: int) -> dict[str, Any]:
    [row] = journal(app, "SELECT id, state, note, result, error FROM events WHERE id = ?", event_id)
    row["result"] = json.loads(row["result"]) if row["result"] else None
    return row


def deliver(app: RunningApp, handler: str, payload: dict) -> dict[str, Any]:
    """POST as the Hub does; the event once its handler returned (job_running when it launched a job)."""
    answer = app.post(f"/webhooks/{handler}", payload, headers={"webhook-id": uuid.uuid4().hex})
    assert answer.is_success, answer.text
    event_id = int(answer.headers["x-webhook-event-id"])
    return wait_until(lambda: (e := event(app, event_id))["state"] in FINISHED and e, message=f"event {event_id}")


def settled(app: RunningApp, event_id: int, state: str) -> dict[str, Any]:
    return wait_until(lambda: (e := event(app, event_id))["state"] == state and e, message=f"#{event_id} {state}")


def reports(app: RunningApp, handler: str) -> list[dict[str, Any]]:
    """The report events (`on_job_end` runs) of a handler, oldest first, with their results."""
    rows = journal(
        app,
        "SELECT id, state, result, error FROM events WHERE endpoint = ? ORDER BY id",
        f"/webhooks/{handler}#on_job_end",
    )
    return [{**row, "result": json.loads(row["result"]) if row["result"] else None} for row in rows]


def commit_event(repo: str, old: str | None, new: str, *, branch: str = "main") -> dict:
    payload = sample_payload(
        "commit",
        repo=repo,
        repo_type="dataset",
        updatedRefs=[{"ref": f"refs/heads/{branch}", "oldSha": old, "newSha": new}],
    )
    payload["repo"]["headSha"] = new
    return payload


# --- train_on_new_data ---------------------------------------------------------------------------------


def test_a_commit_to_main_trains_on_hub_jobs_and_reports_once(
    app: RunningApp, hub: FakeHub, bot: str, compute: Path
) -> None:
    first = hub.add_repo("acme/houses", "dataset", files={"README.md": "# houses"})
    sha = hub.commit("acme/houses", {"data.csv": houses_csv()}, "Add data", repo_type="dataset", author="alice")

    launched = deliver(app, "train_on_new_data", commit_event("acme/houses", first, sha))

    assert launched["state"] == "job_running"
    job_id = launched["result"]["job"]
    assert launched["result"] == {
        "launched": True,
        "job": job_id,
        "url": f"{hub.url}/jobs/bot/{job_id}",
        "flavor": "cpu-basic",
    }
    job = hub.jobs.get(job_id)
    assert (job.flavor, job.timeout_seconds, job.environment["EPOCHS"]) == ("cpu-basic", 3600, "500")
    assert job.secrets["HF_TOKEN"] == bot and "HF_TOKEN" not in job.environment  # a secret, never plain env
    assert job.command[-4:] == ["--dataset", "acme/houses", "--revision", sha] or job.arguments[-4:] == [
        "--dataset",
        "acme/houses",
        "--revision",
        sha,
    ]

    assert run_like_the_hub(hub, job_id, compute) == 0
    settled(app, launched["id"], "succeeded")
    report = wait_until(
        lambda: [r for r in reports(app, "train_on_new_data") if r["state"] == "succeeded"], message="the report to run"
    )[-1]

    [discussion] = hub.discussions("acme/houses", "dataset")
    assert report["result"] == {"reported": True, "discussion": discussion.num}
    assert discussion.title == f"Training on {sha[:7]} succeeded (job {job_id})"
    assert discussion.author == "bot"
    text = discussion.comments[0].content
    assert f"The training on commit `{sha[:7]}` of this dataset ✅ succeeded after " in text
    assert f"[job {job_id}]({hub.url}/jobs/bot/{job_id})" in text
    assert "Model: [acme/houses-linear](https://huggingface.co/acme/houses-linear)." in text
    assert "| validation_rmse |" in text
    model = json.loads(hub.files_at("acme/houses-linear")["model.json"])
    assert model["coefficients"] == {"rooms": pytest.approx(2, abs=0.05), "area": pytest.approx(0.1, abs=0.01)}

    # The report is at least once: replayed (as a retry would), it finds its discussion and opens none.
    console = ConsoleOverHttp(app)
    kind, text = console.call("console_replay", [None, report["id"]])
    assert kind == "complete" and f"Replaying event #{report['id']}" in text, text
    again = wait_until(lambda: (r := event(app, report["id"]))["result"] != report["result"] and r, message="replay")
    assert again["result"] == {"reported": False, "discussion": discussion.num, "reason": "already reported"}
    assert len(hub.discussions("acme/houses", "dataset")) == 1
    assert [j.id for j in hub.jobs.all() if "acme/houses" in j.command + j.arguments] == [job_id]  # no new job


def test_a_training_that_fails_reports_the_error_and_the_end_of_its_logs(
    app: RunningApp, hub: FakeHub, compute: Path
) -> None:
    first = hub.add_repo("acme/words", "dataset")
    sha = hub.commit(
        "acme/words", {"words.csv": "word,label\nhello,greeting\nbye,farewell\n"}, "Add", repo_type="dataset"
    )
    launched = deliver(app, "train_on_new_data", commit_event("acme/words", first, sha))
    job_id = launched["result"]["job"]

    assert run_like_the_hub(hub, job_id, compute) == 2

    failed = settled(app, launched["id"], "dead")
    assert "cannot train: the target column 'label' is not numeric" in failed["error"]
    wait_until(lambda: hub.discussions("acme/words", "dataset"), message="the report")
    [discussion] = hub.discussions("acme/words", "dataset")
    assert discussion.title == f"Training on {sha[:7]} failed (job {job_id})"
    text = discussion.comments[0].content
    assert "❌ failed after" in text and "The Hub says: Job failed with exit code: 1" not in text
    assert "The Hub says: Job failed with exit code: 2" in text
    assert "cannot train: the target column 'label' is not numeric" in text


def test_a_new_commit_supersedes_the_running_training(app: RunningApp, hub: FakeHub, compute: Path) -> None:
    first = hub.add_repo("acme/stream", "dataset")
    one = hub.commit("acme/stream", {"a.csv": houses_csv(10)}, "One", repo_type="dataset")
    older = deliver(app, "train_on_new_data", commit_event("acme/stream", first, one))
    hub.jobs.set_stage(older["result"]["job"], "RUNNING")
    two = hub.commit("acme/stream", {"a.csv": houses_csv(20)}, "Two", repo_type="dataset")

    newer = deliver(app, "train_on_new_data", commit_event("acme/stream", one, two))

    assert newer["state"] == "job_running" and newer["result"]["job"] != older["result"]["job"]
    assert hub.jobs.get(older["result"]["job"]).stage == "CANCELED"
    superseded = settled(app, older["id"], "dead")
    assert f"superseded by event #{newer['id']}" in superseded["error"]
    newest = hub.jobs.get(newer["result"]["job"])
    assert (newest.command + newest.arguments)[-1] == two  # it trains on the new commit

    # The superseded training reports nothing; the newer one opens the one discussion.
    assert run_like_the_hub(hub, newest.id, compute) == 0
    wait_until(lambda: hub.discussions("acme/stream", "dataset"), message="the newer job's report")
    skipped = wait_until(
        lambda: [
            r
            for r in reports(app, "train_on_new_data")
            if r["result"] and r["result"].get("reason", "").startswith("superseded")
        ],
        message="the superseded job's report",
    )
    assert skipped[0]["result"] == {"reported": False, "reason": f"superseded by event #{newer['id']}"}
    [discussion] = hub.discussions("acme/stream", "dataset")
    assert discussion.title == f"Training on {two[:7]} succeeded (job {newest.id})"


def test_commits_to_other_branches_launch_nothing(app: RunningApp, hub: FakeHub) -> None:
    launched = len(hub.jobs)
    outcome = deliver(app, "train_on_new_data", commit_event("acme/side", None, "1" * 40, branch="dev"))
    assert outcome["result"] == {"launched": False, "reason": "main did not move"}
    assert len(hub.jobs) == launched


# --- evaluate_pr -----------------------------------------------------------------------------------------


def test_a_new_pull_request_is_evaluated_and_the_scores_commented_once(
    app: RunningApp, hub: FakeHub, compute: Path
) -> None:
    card = "---\ndatasets:\n- acme/flats\n---\n# model\n"
    good = {
        "features": ["rooms", "area"],
        "target": "price",
        "coefficients": {"rooms": 2.0, "area": 0.1},
        "intercept": 0.0,
    }
    hub.add_repo("acme/flats", "dataset", files={"flats.csv": houses_csv()})
    hub.add_repo("acme/flats-linear", files={"README.md": card, "model.json": json.dumps(good)})
    num = hub.add_discussion("acme/flats-linear", "Shift", author="alice", pull_request=True)
    hub.commit(
        "acme/flats-linear", {"model.json": json.dumps({**good, "intercept": 1.5})}, "Worse", revision=f"refs/pr/{num}"
    )
    payload = sample_payload("pr-opened", repo="acme/flats-linear", discussion={"num": num})

    launched = deliver(app, "evaluate_pr", payload)

    job_id = launched["result"]["job"]
    assert launched["state"] == "job_running"
    assert run_like_the_hub(hub, job_id, compute) == 0
    settled(app, launched["id"], "succeeded")
    wait_until(lambda: len(hub.discussion("acme/flats-linear", num).comments) == 2, message="the comment")
    comment = hub.discussion("acme/flats-linear", num).comments[-1]
    assert comment.author == "bot"
    assert comment.content.startswith("**Evaluation** on `acme/flats` (30 rows): RMSE **1.5**, worse than main (0).")
    assert f"evaluation job [{job_id}]({hub.url}/jobs/bot/{job_id})" in comment.content

    [report] = wait_until(
        lambda: [r for r in reports(app, "evaluate_pr") if r["state"] == "succeeded"], message="the report to end"
    )
    kind, text = ConsoleOverHttp(app).call("console_replay", [None, report["id"]])
    assert kind == "complete", text
    wait_until(
        lambda: event(app, report["id"])["result"] == {"commented": False, "reason": "already commented"},
        message="the replayed report",
    )
    assert len(hub.discussion("acme/flats-linear", num).comments) == 2


def test_a_comment_or_a_discussion_launches_no_evaluation(app: RunningApp, hub: FakeHub) -> None:
    launched = len(hub.jobs)
    for kind in ("comment", "discussion-opened"):
        outcome = deliver(app, "evaluate_pr", sample_payload(kind, repo="acme/flats-linear"))
        assert outcome["result"] == {"launched": False, "reason": "not a new pull request"}, outcome
    assert len(hub.jobs) == launched


# --- the report's text, for what a user's adapted script may print -----------------------------------


def a_job_end(stage: str, logs: str) -> Any:
    from lib import JobEnd

    return JobEnd(
        id="j1",
        namespace="acme",
        url="https://huggingface.co/jobs/acme/j1",
        flavor="cpu-basic",
        stage=stage,
        message=None,
        started_at=0.0,
        finished_at=90.0,
        duration_seconds=90.0,
        logs_tail=logs,
        event_id=1,
    )


def test_the_report_takes_text_metrics_and_survives_an_unreadable_result_line() -> None:
    from handlers.train_on_new_data import report

    text = report(
        a_job_end("COMPLETED", 'RESULT {"accuracy": 0.91234567, "note": "early stop"}'),
        "✅ succeeded",
        dataset="acme/d",
        sha="abc1234",
    )
    assert "| accuracy | 0.912346 |" in text and "| note | early stop |" in text
    assert "after 1.5 min on `cpu-basic`: [job j1](https://huggingface.co/jobs/acme/j1)" in text
    broken = report(a_job_end("COMPLETED", "done\nRESULT {not json"), "✅ succeeded", dataset="acme/d", sha="abc1234")
    assert "| metric |" not in broken and "RESULT {not json" in broken  # the log tail instead
