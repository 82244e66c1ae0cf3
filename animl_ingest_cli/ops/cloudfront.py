"""Clearing the frontend's CloudFront cache: after a frontend deploy, CloudFront keeps serving the old
files until they are invalidated, so the maintenance page (or the app, when it goes off) would not
show. The runbook asks for an invalidation of every path and waits until CloudFront says Completed.

The CallerReference is the caller's: CloudFront answers a repeated reference with the invalidation it
already made, so a resumed runbook step waits on the same invalidation instead of making another.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from animl_ingest_cli.aws import translated
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import InputError, WaitTimeout

ALL_PATHS = ("/*",)
DEFAULT_TIMEOUT = 1200.0  # CloudFront usually completes in a few minutes; 20 minutes is a stuck one
DEFAULT_INTERVAL = 10.0
_DISTRIBUTION_ID = re.compile(r"^[A-Z0-9]{6,32}$")


def check_distribution_id(value: str) -> str:
    """A distribution ID (like E2QWRUHAPOMQZL), not its domain name or ARN."""
    value = value.strip()
    if not _DISTRIBUTION_ID.match(value):
        raise InputError(f"--distribution-id takes the distribution's ID (capital letters and digits, "
                         f"like E2QWRUHAPOMQZL), not {value!r}")
    return value


@dataclass
class Invalidation:
    distribution_id: str
    id: str
    status: str
    paths: tuple[str, ...]
    waited: float

    @property
    def completed(self) -> bool:
        return self.status.lower() == "completed"

    def to_dict(self) -> dict[str, Any]:
        return {"distribution_id": self.distribution_id, "invalidation_id": self.id,
                "status": self.status, "paths": list(self.paths), "waited": round(self.waited, 3)}


def invalidate(ctx: StageContext, distribution_id: str, *, reference: str,
               paths: tuple[str, ...] = ALL_PATHS, timeout: float = DEFAULT_TIMEOUT,
               interval: float = DEFAULT_INTERVAL, on_wait: Callable[[Invalidation], None] | None = None,
               sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> Invalidation:
    """Invalidate `paths` of the distribution and wait until the invalidation is Completed.

    Raises WaitTimeout when it is not completed within `timeout` seconds (it goes on in CloudFront;
    the same `reference` waits on it again), StoreError for CloudFront's refusals (NoSuchDistribution,
    ...; AccessDenied for a missing permission).
    """
    distribution_id = check_distribution_id(distribution_id)
    if ctx.is_local:
        raise InputError("the local stage has no CloudFront distribution")
    cf = ctx.client("cloudfront")
    start = clock()
    with translated("CloudFront CreateInvalidation"):
        created = cf.create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": list(paths)},
                               "CallerReference": reference})["Invalidation"]
    inv = Invalidation(distribution_id, created["Id"], created["Status"], paths, 0.0)
    while not inv.completed:
        inv.waited = clock() - start
        remaining = start + timeout - clock()
        if remaining <= 0:
            raise WaitTimeout(f"CloudFront invalidation {inv.id} of {distribution_id} is still "
                              f"{inv.status} after {inv.waited:.0f} s")
        if on_wait:
            on_wait(inv)
        sleep(min(interval, remaining))
        with translated("CloudFront GetInvalidation"):
            got = cf.get_invalidation(DistributionId=distribution_id, Id=inv.id)["Invalidation"]
        inv.status = got["Status"]
    inv.waited = clock() - start
    return inv
