"""Runbook tests share one botocore model loader (see tests.ops.helpers.shared_model_loader)."""

from __future__ import annotations

from tests.ops.helpers import shared_model_loader  # noqa: F401 - an autouse fixture for this folder
