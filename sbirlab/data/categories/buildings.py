"""Drawing programs: buildings."""
from __future__ import annotations

import numpy as np

from . import category
