"""animl-ingest: the Animl image ingest function and the operator CLI around it."""

from __future__ import annotations

__version__ = "0.1.0"
