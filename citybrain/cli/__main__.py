"""``python -m citybrain.cli``: the command line, as the ``citybrain`` script runs it."""

import sys

from citybrain.cli.main import main

sys.exit(main())
