"""Bulk-upload tests share the operator tests' botocore model loader (a fast moto)."""

from __future__ import annotations

from tests.ops.helpers import shared_model_loader  # noqa: F401 - an autouse fixture for this folder
