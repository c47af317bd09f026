"""vsode: VidStyleODE video editing.

The public API is re-exported here; heavy modules (torch) load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"
