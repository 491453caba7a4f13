"""Drawing programs: animals."""
from __future__ import annotations

import numpy as np

from . import category
