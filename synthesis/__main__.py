"""``python -m synthesis ...`` is ``s2scat-synth ...``."""

import sys

from .cli import main

sys.exit(main())
