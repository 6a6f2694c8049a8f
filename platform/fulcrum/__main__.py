"""`python -m fulcrum`: the CLI where no `fulcrum` script is on PATH (a Ray job's driver on a
cluster that got fulcrum as a wheel in py_modules)."""

import sys

from fulcrum.cli import main

sys.exit(main())
