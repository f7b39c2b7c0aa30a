"""`python -m polycopy.cli`: how the demo, the benchmark and the tests start components."""

import sys

from polycopy.cli import main

sys.exit(main())
