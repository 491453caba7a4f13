"""Drawing programs: food."""
from __future__ import annotations

import numpy as np

from . import category
