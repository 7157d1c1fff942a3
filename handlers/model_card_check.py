"""Opens a discussion when a commit to main leaves a model card without required metadata.

Subscribe to: the `repo` domain of the models to check (events of datasets and Spaces are skipped).
Needs: HF_TOKEN, a token allowed to open discussions on those models (read access is not enough).
Settings (environment variables):
    MODEL_CARD_REQUIRED  comma-separated metadata keys README.md must set (default `license`).

One discussion per problem: while a discussion it opened about the same missing keys is still
open, later commits with the same problem add nothing.
Try it: python -m lib.send commit --to model_card_check --repo <you>/<model> --sha <a commit of main>
"""

import os

from huggingface_hub import ModelCard

from lib import Events, WebhookPayload, hub_client, log

EVENTS = Events(scope="repo.content", repo_type="model")
EXAMPLES = {"license": "apache-2.0", "language": "en", "library_name": "transformers", "pipeline_tag": "fill-mask"}


def handle(payload: WebhookPayload) -> dict:
    if "main" not in payload.updated_branches:
        return {"checked": False, "reason": "main did not move"}
    required = [key.strip() for key in os.environ.get("MODEL_CARD_REQUIRED", "license").split(",") if key.strip()]
    hub, repo, sha = hub_client(), payload.repo.name, payload.commit_sha
    readme = hub.read_text(repo, "README.md", revision=sha)
    metadata = ModelCard(readme, ignore_metadata_errors=True).data.to_dict() if readme else {}
    missing = [key for key in required if not metadata.get(key)]
    if not missing:
        return {"checked": True, "missing": []}

    title = f"Model card: add {', '.join(missing)} to the metadata"
    mine = hub.get_repo_discussions(repo, author=hub.me["name"], discussion_type="discussion", discussion_status="open")
    for discussion in mine:
        if discussion.title == title:
            return {"checked": True, "missing": missing, "discussion": discussion.num, "opened": False}

    example = "\n".join(f"{key}: {EXAMPLES.get(key, '...')}" for key in missing)
    description = (
        f"The model card (README.md) at commit {sha[:7]} does not set {', '.join(f'`{k}`' for k in missing)} "
        f"in its metadata. Please add {'it' if len(missing) == 1 else 'them'} to the YAML header at the top "
        "of README.md, e.g.:\n\n"
        f"```yaml\n---\n{example}\n---\n```\n\n"
        "See https://huggingface.co/docs/hub/model-cards#model-card-metadata. "
        "(Opened by a webhook; it opens no other discussion about this while this one is open.)"
    )
    discussion = hub.create_discussion(repo, title, description=description)
    log.info("Opened %s#%d: %s", repo, discussion.num, title)
    return {"checked": True, "missing": missing, "discussion": discussion.num, "opened": True}
