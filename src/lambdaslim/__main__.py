"""``python -m lambdaslim`` is the ``lambdaslim`` command."""

import sys

from ._cli import main

sys.exit(main())
