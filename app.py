"""The Space: every module in handlers/ becomes a webhook endpoint, with a landing page that says
which URL to give the Hub. Run it with `python app.py` (settings come from the environment or .env).
"""

from pathlib import Path

from dotenv import load_dotenv

from lib import ConfigurationError, WebhooksServer
from lib.ui.landing import build_landing_page

HANDLERS = Path(__file__).parent / "handlers"


def main() -> None:
    load_dotenv(override=False)  # the real environment (Space secrets) wins over .env
    server = WebhooksServer(ui=build_landing_page)
    server.add_handlers(HANDLERS)
    server.launch()


if __name__ == "__main__":
    try:
        main()
    except ConfigurationError as error:  # a setting or a handler file to fix: say which, no traceback
        raise SystemExit(f"Cannot start: {error}") from None
