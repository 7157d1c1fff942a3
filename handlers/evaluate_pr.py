"""Evaluates the model of a new pull request on Hugging Face Jobs, then comments the score on the PR.

Subscribe to: the `discussion` domain of the models to review (made by `train_on_new_data.py`, or any
repo with a `model.json` of the same shape; adapt `jobs/evaluate.py` to your own models).
Needs: HF_TOKEN, a token allowed to run Jobs (the account needs credits), to read the models and
their datasets, and to comment on their pull requests.
Settings (environment variables):
    EVALUATE_FLAVOR   the hardware (default `cpu-basic`).
    EVALUATE_TIMEOUT  how long the job may run (default `30m`).

Each new pull request launches `jobs/evaluate.py` once, which scores the PR's model against main's on
the dataset the model card names; when the job ends, one comment on the PR gives the scores, or the
job's error and the end of its logs. The comment is at-least-once like every report, so it looks for
its own earlier comment (it names the job) before writing. Pull requests opened empty and pushed to
later are evaluated as they were when opened: subscribe to `repo.content` too and launch on
`ref.pr_num` updates to evaluate every push.
Try it: python -m lib.send pr-opened --to evaluate_pr --repo <you>/<model> --discussion <num>
"""

import json
import os

from lib import Events, JobEnd, WebhookPayload, hub_client, log, run_uv_job

EVENTS = Events(scope="discussion", action="create", repo_type="model")
SCRIPT = "jobs/evaluate.py"


def handle(payload: WebhookPayload) -> dict:
    discussion = payload.discussion
    if payload.event.scope != "discussion" or discussion is None or not discussion.isPullRequest:
        return {"launched": False, "reason": "not a new pull request"}
    job = run_uv_job(
        SCRIPT,
        script_args=["--model", payload.repo.name, "--revision", f"refs/pr/{discussion.num}"],
        flavor=os.environ.get("EVALUATE_FLAVOR", "cpu-basic"),
        timeout=os.environ.get("EVALUATE_TIMEOUT", "30m"),
    )
    log.info("Evaluating %s#%d on job %s", payload.repo.name, discussion.num, job.id)
    return {"launched": True, "job": job.id, "url": job.url}


def on_job_end(job: JobEnd, payload: WebhookPayload) -> dict:
    """Comment the result on the PR once; none more when this report runs again."""
    hub, repo, num = hub_client(), payload.repo.name, payload.discussion.num
    signature = f"evaluation job [{job.id}]({job.url})"
    details = hub.get_discussion_details(repo, num)
    me = hub.me["name"]
    for event in details.events:
        if event.type == "comment" and event.author == me and signature in event.content:
            return {"commented": False, "reason": "already commented"}
    hub.comment_discussion(repo, num, comment(job) + f"\n\n<sub>{signature}, opened by a webhook</sub>")
    log.info("Commented the evaluation of %s#%d (job %s)", repo, num, job.id)
    return {"commented": True, "discussion": num}


def comment(job: JobEnd) -> str:
    """The scores of a job that completed; the outcome, the Hub's message and the end of the logs otherwise."""
    lines = (job.logs_tail or "").splitlines()
    result = next((line for line in reversed(lines) if line.startswith("RESULT ")), None)
    if job.succeeded and result:
        scores = json.loads(result.removeprefix("RESULT "))
        text = f"**Evaluation** on `{scores['dataset']}` ({scores['rows']} rows): RMSE **{scores['rmse']:.4g}**"
        if scores.get("main_rmse") is not None:
            change = scores["rmse"] - scores["main_rmse"]
            verdict = "better than" if change < 0 else "worse than" if change > 0 else "the same as"
            text += f", {verdict} main ({scores['main_rmse']:.4g})"
        return text + "."
    tail = "\n".join(lines[-20:])
    text = f"**The evaluation did not finish** ({job.stage}{': ' + job.message if job.message else ''})."
    return text + (f"\n\nLast lines of its logs:\n\n```\n{tail}\n```" if tail else "")
