"""Keeps a CHANGELOG.md in each watched repo: one line per commit pushed to main.

Subscribe to: the `repo` domain of the repos to keep a changelog for (models, datasets, Spaces).
Needs: HF_TOKEN, a token with write access to those repos.
Settings (environment variables):
    CHANGELOG_FILE  the file to keep up to date (default `CHANGELOG.md`).

It commits to the repo it watches, so its own commit comes back as a new event. The loop guard
knows that commit (made through `hub_client()`) and records the event as skipped before this
handler runs: no endless loop. Running twice on one event adds nothing (commits already listed
are left out), so retries and replays are safe.
Try it: python -m lib.send commit --to changelog --repo <you>/<repo> --sha <the latest commit of main>
"""

import os

from lib import Events, WebhookPayload, hub_client, log

EVENTS = Events(scope="repo.content")
HEADER = "# Changelog\n\n"


def handle(payload: WebhookPayload) -> dict:
    main = next((ref for ref in payload.updatedRefs or [] if ref.branch == "main" and not ref.is_deleted), None)
    if main is None:
        return {"updated": False, "reason": "main did not move"}
    hub, repo, repo_type = hub_client(), payload.repo.name, payload.repo.type
    path = os.environ.get("CHANGELOG_FILE", "CHANGELOG.md")
    changelog = hub.read_text(repo, path, repo_type=repo_type) or HEADER
    commits = [
        commit
        for commit in hub.commits_between(repo, main.oldSha, main.newSha, repo_type=repo_type)
        if not hub.made(commit.commit_id) and f"`{commit.commit_id[:7]}`" not in changelog
    ]
    if not commits:
        return {"updated": False, "reason": "already up to date"}

    lines = "".join(
        f"- {c.created_at:%Y-%m-%d} `{c.commit_id[:7]}` {c.title} ({', '.join(c.authors)})\n" for c in commits
    )
    content = HEADER + lines + changelog.removeprefix(HEADER)
    info = hub.upload_file(
        path_or_fileobj=content.encode(),
        path_in_repo=path,
        repo_id=repo,
        repo_type=repo_type,
        commit_message=f"Update {path}: {len(commits)} new commit(s)",
    )
    log.info("Added %d commit(s) to %s in %s", len(commits), path, repo)
    return {"updated": True, "added": [c.commit_id for c in commits], "commit": info.oid}
