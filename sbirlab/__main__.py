"""``python -m sbirlab ARGS`` (and ``torchrun -m sbirlab train ARGS``): the ``sbirlab`` command line."""
import sys

from .cli import main

sys.exit(main())
