"""`python -m lib.send KIND`: post a realistic Hub event to an endpoint (the command is `lib.tools.send`)."""

import sys

from .tools.send import main

if __name__ == "__main__":
    sys.exit(main())
