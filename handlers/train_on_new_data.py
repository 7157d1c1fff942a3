"""Trains a model on Hugging Face Jobs when a dataset's main branch moves, then reports in a discussion.

Subscribe to: the `repo` domain of the datasets to train on (events of models and Spaces are skipped).
Needs: HF_TOKEN, a token allowed to run Jobs (the account needs credits: jobs are billed per second),
to open discussions on those datasets and to push the model repos.
Settings (environment variables):
    TRAIN_FLAVOR   the hardware (default `cpu-basic`; `t4-small`, `a10g-small`, ... for a GPU).
    TRAIN_TIMEOUT  how long the job may run (default `1h`); it is cancelled after that.
    TRAIN_EPOCHS   passed to the script as `EPOCHS` (default 300).
    TRAIN_MODEL    the model repo to push to (default `<dataset>-linear`).

Each commit to main launches `jobs/train.py` (shipped in this Space) on the Hub's compute, at most
once per event: a Hub retry or a crash never launches a second paid job. A newer commit cancels the
training still running for the older one (`JOB_POLICY = "supersede"`). When the job ends, one
discussion on the dataset says how it went, how long it took and where the job is (a superseded
training reports nothing: the newer one will); the report may run again (it is retried like a
handler), so it looks for its own discussion first.
Try it: python -m lib.send commit --to train_on_new_data --repo <you>/<dataset> --repo-type dataset --sha <its main>
"""

import json
import os

from lib import Events, JobEnd, WebhookPayload, hub_client, log, run_uv_job

EVENTS = Events(scope="repo.content", repo_type="dataset")
JOB_POLICY = "supersede"  # a new commit makes the running training pointless: cancel it, train on the new data
FLAVOR = "cpu-basic"
SCRIPT = "jobs/train.py"
OUTCOMES = {"COMPLETED": "✅ succeeded", "ERROR": "❌ failed", "CANCELED": "⏹️ was cancelled",
            "DELETED": "🗑️ was deleted", "TIMED_OUT": "⌛ timed out"}  # fmt: skip


def handle(payload: WebhookPayload) -> dict:
    if "main" not in payload.updated_branches:
        return {"launched": False, "reason": "main did not move"}
    dataset, sha = payload.repo.name, payload.commit_sha or "main"
    script_args = ["--dataset", dataset, "--revision", sha]
    if model := os.environ.get("TRAIN_MODEL"):
        script_args += ["--model", model]
    job = run_uv_job(
        SCRIPT,
        script_args=script_args,
        flavor=os.environ.get("TRAIN_FLAVOR", FLAVOR),
        env={"EPOCHS": os.environ.get("TRAIN_EPOCHS", "300")},
        timeout=os.environ.get("TRAIN_TIMEOUT", "1h"),
    )
    log.info("Training %s@%s on job %s (%s)", dataset, sha[:7], job.id, job.flavor)
    return {"launched": True, "job": job.id, "url": job.url, "flavor": job.flavor}


def on_job_end(job: JobEnd, payload: WebhookPayload) -> dict:
    """Open one discussion on the dataset with the outcome; none more when this report runs again, and none
    for a training cancelled because a newer commit came (that one reports)."""
    if job.stage == "CANCELED" and (job.message or "").startswith("superseded"):
        return {"reported": False, "reason": job.message}
    hub, dataset = hub_client(), payload.repo.name
    sha = (payload.commit_sha or "main")[:7]
    marker = f"(job {job.id})"  # in the title, so one listing finds an earlier report of this job
    mine = hub.get_repo_discussions(dataset, author=hub.me["name"], repo_type="dataset", discussion_type="discussion")
    for discussion in mine:
        if discussion.title.endswith(marker):
            return {"reported": False, "discussion": discussion.num, "reason": "already reported"}

    outcome = OUTCOMES.get(job.stage, job.stage)
    title = f"Training on {sha} {outcome.split(' ', 1)[1]} {marker}"
    discussion = hub.create_discussion(
        dataset, title, description=report(job, outcome, dataset=dataset, sha=sha), repo_type="dataset"
    )
    log.info("Reported job %s on %s#%d", job.id, dataset, discussion.num)
    return {"reported": True, "discussion": discussion.num}


def report(job: JobEnd, outcome: str, *, dataset: str, sha: str) -> str:
    """The discussion's text: outcome, duration, link; the metrics of a success, the log tail of a failure."""
    took = f"{job.duration_seconds / 60:.1f} min" if job.duration_seconds is not None else "an unknown time"
    lines = [
        f"The training on commit `{sha}` of this dataset {outcome} after {took} "
        f"on `{job.flavor}`: [job {job.id}]({job.url}).",
    ]
    metrics = result_line(job.logs_tail)
    if job.succeeded and metrics:
        model = metrics.pop("model", None)
        metrics.pop("commit", None)
        if model:
            lines.append(f"Model: [{model}](https://huggingface.co/{model}).")
        rows = (f"| {k} | {v:.6g} |" if isinstance(v, int | float) else f"| {k} | {v} |" for k, v in metrics.items())
        lines.append("| metric | value |\n|---|---|\n" + "\n".join(rows))
    else:
        if job.message:
            lines.append(f"The Hub says: {job.message}")
        if job.logs_tail:
            lines.append("Last lines of its logs:\n\n```\n" + job.logs_tail.strip()[-3000:] + "\n```")
    lines.append("(Opened by a webhook of this dataset; one discussion per training job.)")
    return "\n\n".join(lines)


def result_line(logs: str | None) -> dict | None:
    """The metrics `jobs/train.py` prints last (`RESULT {...}`), or None when there is no readable one."""
    line = next((line for line in reversed((logs or "").splitlines()) if line.startswith("RESULT ")), None)
    try:
        metrics = json.loads(line.removeprefix("RESULT ")) if line else None
    except ValueError:
        return None
    return metrics if isinstance(metrics, dict) else None
