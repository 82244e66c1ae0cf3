"""Cuddeback / CuddeLink: the camera's identity is the `ID=` item of the UserComment.

CuddeLink cameras write `MR=C.1,AD=4/15/2023,...,ID=WAI SAT 01-09,...` (no charset header) and
no EXIF serial; the email relay copies the ID into SerialNumber. exiftool reports none, so the ID
is only surfaced as a hint.
"""

from __future__ import annotations

import re

from animl_ingest_cli.metadata import text

_ID_ITEM = re.compile(r"(?:^|,)\s*ID=([^,]*)")


def user_comment_id(user_comment: str | None) -> str | None:
    return text.first_group(_ID_ITEM, user_comment)
