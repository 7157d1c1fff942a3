"""`python -m lib.job HANDLER`: run a handler on the payload a Hub Job receives (the command is `lib.tools.job`)."""

import sys

from dotenv import load_dotenv

from .tools.job import main

if __name__ == "__main__":
    load_dotenv(override=False)  # locally, .env as app.py reads it; in a Job the environment wins
    sys.exit(main())
