from __future__ import annotations

import sys
from pathlib import Path

# the image tests share chartpod.py; importable under any pytest import mode
sys.path.insert(0, str(Path(__file__).resolve().parent))
