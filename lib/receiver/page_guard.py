"""What anyone may send to the landing page's Gradio API: no files, and only small bodies.

Gradio 6.31 (`gradio/routes.py`, `gradio/route_utils.py`) accepts from anyone, without the webhook
secret:

- `POST /gradio_api/upload`: multipart files of any size while `max_file_size` is unset, written to
  Gradio's upload folder (`GRADIO_TEMP_DIR`, else `/tmp/gradio`) and kept there;
- `POST /gradio_api/process_recording`, and `POST /gradio_api/component_server` sent as multipart:
  a file each, written to a temporary file as it arrives;
- JSON for its other routes (`/gradio_api/queue/join`, `/gradio_api/run/...`), read whole into
  memory, and a login form at `POST /login`.

The landing page has no upload component, so `PageGuard` refuses every upload (403) and every
body over `max_body_bytes` (413) or of no declared length (411) on those paths, from the request
head alone: not a byte of the body is read, and the connection is closed after the answer.
`launch()` also sets Gradio's own `max_file_size` to 0, behind this guard. A page of your own that
needs uploads passes `launch(max_file_size="10mb")`: uploads are then let through, and Gradio
enforces that size (and keeps the files in its upload folder).

Routes you add to `fastapi_app` yourself are not Gradio's and are left alone.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

GRADIO_API_PREFIX = "/gradio_api/"
"""`gradio.route_utils.API_PREFIX`: every route of Gradio's API is under it."""
GRADIO_FORM_PATHS = frozenset({"/login", "/login/"})
"""Gradio's routes outside the API prefix that read a body (its password login form)."""
UPLOAD_PATHS = frozenset({"/gradio_api/upload", "/gradio_api/process_recording"})


class PageGuard:
    """ASGI middleware in front of the page: refuses uploads and large bodies to Gradio's routes.

    Args:
        app: the page (FastAPI with Gradio mounted).
        max_body_bytes: the largest body accepted on Gradio's routes; the page's own calls are a few KB.
        allow_uploads: let file uploads through to Gradio (which then enforces its `max_file_size`).
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, allow_uploads: bool = False) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.allow_uploads = allow_uploads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path.startswith(GRADIO_API_PREFIX) or path in GRADIO_FORM_PATHS:
                refusal = self.refusal(scope)
                if refusal is not None:
                    status, message = refusal
                    logger.info(
                        "%s %s answered %d: %s",
                        scope["method"],
                        path,
                        status,
                        message,
                        extra={"repeat_key": ("page refused", status)},
                    )
                    response = JSONResponse({"error": message}, status_code=status, headers={"connection": "close"})
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> tuple[int, str] | None:
        """The status and message a request to Gradio gets from its head alone, or None to let it through."""
        content_type = content_length = transfer_encoding = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1").lower()
            elif name == b"content-length":
                content_length = value
            elif name == b"transfer-encoding":
                transfer_encoding = value
        is_upload = scope["path"] in UPLOAD_PATHS or (content_type or "").startswith("multipart/form-data")
        if is_upload:
            if not self.allow_uploads:
                return 403, "This page takes no file uploads."
            return None  # Gradio checks the size against its max_file_size as the file arrives
        if transfer_encoding is not None:
            return 411, "Send the body with a Content-Length header."
        if content_length is not None:
            if not content_length.isdigit():  # uvicorn's parser refuses these first; kept as a safeguard
                return 400, "Content-Length must be a whole number of bytes."
            if int(content_length) > self.max_body_bytes:
                return 413, f"The body is larger than {self.max_body_bytes} bytes, the most this page accepts."
        return None
