"""Answers `/ping` (or a mention of the bot) in new discussions, pull requests and comments.

Subscribe to: the `discussion` domain of the repos the bot watches.
Needs: HF_TOKEN, a token of the account the bot comments as (write access).
Settings (environment variables):
    DISCUSSION_BOT_COMMAND  the word that calls the bot (default `/ping`); `@<bot's user name>` works too.
    DISCUSSION_BOT_REPLY    the comment it answers with (default `pong 🏓`).

It never answers its own comments: their author is the token's user (whoami, asked once).
Replace the reply with your own logic: run a check, summarise a PR, label, close ...
Try it: python -m lib.send comment --to discussion_bot --repo <you>/<repo> --discussion <num> --comment /ping
"""

import os

from lib import Events, WebhookPayload, hub_client, log

EVENTS = Events(scope="discussion", action="create")  # new discussions, PRs and comments


def handle(payload: WebhookPayload) -> dict:
    comment = payload.comment
    if comment is None or not comment.content:  # no first comment, or a hidden one
        return {"answered": False, "reason": "no comment text"}
    hub = hub_client()
    me = hub.me
    if comment.author.id == me["id"]:
        return {"answered": False, "reason": "my own comment"}
    command = os.environ.get("DISCUSSION_BOT_COMMAND", "/ping")
    words = {word.strip(".,:;!?") for word in comment.content.lower().split()}
    if command.lower() not in words and f"@{me['name']}".lower() not in words:
        return {"answered": False, "reason": f"not called ({command} or @{me['name']})"}

    reply = os.environ.get("DISCUSSION_BOT_REPLY", "pong 🏓")
    repo, num = payload.repo.name, payload.discussion.num
    hub.comment_discussion(repo, num, reply, repo_type=payload.repo.type)
    log.info("Answered %s in %s#%d", command, repo, num)
    return {"answered": True, "discussion": num}
