"""Reading a file's metadata the way `exiftool -json -G` did for the Node ingest, in-process.

See docs/metadata.md for the rules; `read_metadata` is the one entry point.
"""

from __future__ import annotations

from animl_ingest_cli.metadata.record import FileMetadata, iso_date, read_metadata, read_metadata_file

__all__ = ["FileMetadata", "iso_date", "read_metadata", "read_metadata_file"]
