"""Bare FastAPI: one POST endpoint validating the body with huggingface_hub's `WebhookPayload`.

The floor any FastAPI-based receiver stands on: the same model validation and secret check as
the reference, with no Gradio, no journal and no worker. Served by uvicorn with the settings
`lib/receiver/server.py` uses (loop and HTTP parser "auto": uvloop and httptools here).
"""

import os

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from huggingface_hub import WebhookPayload

SECRET = os.environ["WEBHOOK_SECRET"]

app = FastAPI()


@app.post("/webhooks/trivial")
async def trivial(payload: WebhookPayload, request: Request) -> JSONResponse:
    if request.headers.get("x-webhook-secret") != SECRET:
        return JSONResponse({"error": "Invalid webhook secret."}, status_code=403)
    return JSONResponse({"status": "ok", "repo": payload.repo.name})


if __name__ == "__main__":
    config = uvicorn.Config(
        app, host="127.0.0.1", port=int(os.environ["BENCH_PORT"]), log_level="warning", lifespan="on"
    )
    uvicorn.Server(config).run()
