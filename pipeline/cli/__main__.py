"""``python -m pipeline.cli ARGS`` runs ``aura ARGS`` (as a Ray job entrypoint or a test would)."""

import sys

from pipeline.cli import main

sys.exit(main())
