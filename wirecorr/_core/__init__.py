"""The compiled packet core (Cython): capture bytes to table columns, no object per packet.

`packets` is built by `pip install` (setup.py). `WIRECORR_PURE=1` selects the pure-Python
reference instead (the differential tests use it); without it a missing build is an
error, never a silent fall back to the slower path (tests/test_packet_core.py checks).
"""

from __future__ import annotations

import os


def pure_requested() -> bool:
    """True when the environment asks for the pure-Python reference path."""
    return os.environ.get("WIRECORR_PURE", "") not in ("", "0")
