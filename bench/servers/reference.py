"""The reference: `huggingface_hub.WebhooksServer` with the benchmark's trivial and slow handlers.

Started by `bench/run.py` as `python reference.py` with BENCH_PORT, WEBHOOK_SECRET and
BENCH_SLOW_SECONDS in the environment. Both handlers are the same code as ours (bench/servers/handlers),
on the reference's own `WebhookPayload` model.
"""

import asyncio
import os

from huggingface_hub import WebhookPayload, WebhooksServer

SLOW_SECONDS = float(os.environ.get("BENCH_SLOW_SECONDS", "40"))

app = WebhooksServer(webhook_secret=os.environ["WEBHOOK_SECRET"])


@app.add_webhook("/trivial")
async def trivial(payload: WebhookPayload) -> dict[str, str]:
    return {"status": "ok", "repo": payload.repo.name}


@app.add_webhook("/slow")
async def slow(payload: WebhookPayload) -> dict[str, str]:
    await asyncio.sleep(SLOW_SECONDS)
    return {"status": "done", "repo": payload.repo.name}


if __name__ == "__main__":
    app.launch(
        share=False,
        prevent_thread_lock=False,
        server_name="127.0.0.1",
        server_port=int(os.environ["BENCH_PORT"]),
    )
