"""Stage -> every name Animl uses (buckets, SSM parameters, queues, secret), in one place.

Names follow docs/animl.md: buckets default to `animl-images-<kind>-<stage>` and are overridden by the
stack's SSM parameters when those exist; the API URL comes from `/api/url-<stage>`; the API key from
env `API_KEY` (the deployed function), else `ANIML_API_KEY`, else Secrets Manager `api-key-<stage>`.
These are the names; `context.StageContext` resolves them for a stage and records where each value
came from.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from animl_ingest_cli.errors import InputError

REGION = "us-west-2"
STAGES = ("local", "dev", "prod")
DEFAULT_STAGE = "local"
BUCKET_KINDS = ("ingestion", "serving", "dead-letter", "parkinglot")
MAINTENANCE_CACHE_SECONDS = 15.0
MB = 1024 * 1024
DEFAULT_BYTES = 256 * MB   # ingest's source bytes in flight, by default (pool.py)
MAX_IMAGES = 256           # ingest's --concurrency at most
ALLOW_OPTION = "--allow-foreign-bucket"  # the option that lets a write go to a bucket not the stage's
MOVE_CONCURRENCY = 32  # unpark's and redrive's copies under way at once, by default
MAINTENANCE_WAIT_ENV = "ANIML_MAINTENANCE_WAIT_SECONDS"  # how long `maintenance on|off` waits
API_KEY_ENV = ("API_KEY", "ANIML_API_KEY")  # in this order; then the stage's secret


def maintenance_flag(value: str | None) -> bool:
    """What the maintenance parameter means, as the ingest function obeys it: the String `true` (any
    case, spaces ignored) is on; anything else, or a missing parameter (None), is off."""
    return value is not None and value.strip().lower() == "true"


# S3's bucket naming rules (3-63 characters; lower-case letters, digits, dots, hyphens; a letter or a
# digit at each end; no two dots in a row). The local stage keeps each bucket in a folder of that name,
# so a name that passes can never point outside ANIML_LOCAL_DIR.
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def is_bucket_name(name: object) -> bool:
    return isinstance(name, str) and bool(_BUCKET_NAME.match(name)) and ".." not in name


def is_prod_bucket(name: str) -> bool:
    """A bucket of the prod stage, as far as a name tells: every prod bucket Animl makes (the defaults
    `animl-images-<kind>-prod` and the stack's) ends in `-prod`."""
    return name.endswith("-prod")


def check_stage(stage: str | None) -> str:
    """The stage name, validated; `None` means env ANIML_STAGE, else `local`.

    An empty value (`--stage "$STAGE"` with STAGE unset, or `ANIML_STAGE=`) is an error, never
    `local`: a command aimed at dev must not quietly act on the local stage."""
    env = os.environ.get("ANIML_STAGE")
    if stage is not None and not stage.strip():
        raise InputError("--stage is empty (an unset shell variable?): use one of " + ", ".join(STAGES))
    if stage is None and env is not None and not env.strip():
        raise InputError("ANIML_STAGE is set but empty: set it to one of " + ", ".join(STAGES)
                         + ", or unset it for local")
    value = (stage or env or DEFAULT_STAGE).strip()
    if value not in STAGES:
        raise InputError(f"unknown stage {value!r}: use one of {', '.join(STAGES)}")
    return value


@dataclass(frozen=True)
class Names:
    """Every name of one stage, before any SSM override."""

    stage: str

    def default_bucket(self, kind: str) -> str:
        if kind not in BUCKET_KINDS:
            raise ValueError(f"unknown bucket kind {kind}")
        return f"animl-images-{kind}-{self.stage}"

    def bucket_param(self, kind: str) -> str:
        if kind not in BUCKET_KINDS:
            raise ValueError(f"unknown bucket kind {kind}")
        return f"/images/{kind}-bucket-{self.stage}"

    @property
    def maintenance_param(self) -> str:
        return f"/images/maintenance-mode-{self.stage}"

    @property
    def api_url_param(self) -> str:
        return f"/api/url-{self.stage}"

    @property
    def batch_queue_param(self) -> str:
        return f"/images/batch-queue-{self.stage}"

    @property
    def batch_job_param(self) -> str:
        return f"/images/batch-job-{self.stage}"

    @property
    def images_url_param(self) -> str:
        return f"/images/url-{self.stage}"

    @property
    def inference_queue_param(self) -> str:
        return f"/ml/inference-queue-url-{self.stage}"

    @property
    def task_queue_param(self) -> str:
        return f"/tasks/task-queue-url-{self.stage}"

    @property
    def api_secret(self) -> str:
        return f"api-key-{self.stage}"

    @property
    def queue_prefixes(self) -> tuple[str, ...]:
        """Prefixes of every Animl SQS queue of the stage (docs/animl.md, Queues)."""
        s = self.stage
        return (f"inferenceQueue-{s}", f"inferenceDLQ-{s}", f"taskQueue-{s}", f"taskDLQ-{s}",
                f"animl-ingest-{s}-batch-")

    @property
    def batch_stack_prefix(self) -> str:
        return f"animl-ingest-{self.stage}-batch-"

    # One bulk upload's per-batch stack and what it holds (docs/bulk-upload.md; animl-api hard-codes
    # the queue name). `batch` is the batch id, `batch-<uuid>`.
    def batch_stack(self, batch: str) -> str:
        return f"animl-ingest-{self.stage}-{batch}"

    def batch_of_stack(self, stack: str) -> str | None:
        """`batch-<uuid>` for one of this stage's per-batch stacks, else None."""
        prefix = f"animl-ingest-{self.stage}-"
        return stack[len(prefix):] if stack.startswith(self.batch_stack_prefix) else None

    def batch_queue(self, batch: str) -> str:
        return self.batch_stack(batch)

    def batch_dlq(self, batch: str) -> str:
        return f"{self.batch_stack(batch)}-dlq"

    def batch_alarm(self, batch: str) -> str:
        return f"{self.batch_stack(batch)}-sqs-empty"

    @property
    def batch_alarm_suffix(self) -> str:
        return "-sqs-empty"

    @property
    def batch_delete_topic(self) -> str:
        """The SNS topic every per-batch alarm notifies; the teardown function subscribes to it."""
        return f"animl-ingest-{self.stage}-delete"

    def ssm_names(self) -> dict[str, str]:
        """Label -> SSM parameter name, for `config` and bulk reads."""
        out = {f"{kind}-bucket": self.bucket_param(kind) for kind in BUCKET_KINDS}
        out.update({
            "maintenance-mode": self.maintenance_param,
            "api-url": self.api_url_param,
            "batch-queue": self.batch_queue_param,
            "batch-job": self.batch_job_param,
            "images-url": self.images_url_param,
            "inference-queue-url": self.inference_queue_param,
            "task-queue-url": self.task_queue_param,
        })
        return out


def local_dir() -> Path:
    """Where the local stage keeps its buckets, parameters and catalog."""
    return Path(os.environ.get("ANIML_LOCAL_DIR") or "animl-local").resolve()


def state_dir() -> Path:
    """The user's state directory: audit log, runbook state, unpark checkpoints."""
    explicit = os.environ.get("ANIML_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "animl-ingest"


def cpu_count() -> int:
    """The CPUs this process may run on (a container's or taskset's share, not the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_images(cpus: int | None = None) -> int:
    """Objects in flight by default: enough that a laptop far from the region (S3 at ~50-100 ms a
    request, createImage at ~250-500 ms) keeps every core busy with pixel work: eight an idle core,
    at least 64, at most 128. The floor is for short runs on small machines: an image waits about
    seven round trips and a createImage, so with 32 in flight on 2 cores the last of 60 images
    started half a second late (bench/latency_bench.py: 1.15x the loopback time, 1.12x with 64;
    docs/performance.md). Memory stays bounded by the byte cap, not by this number."""
    return min(128, max(64, 8 * (cpus or cpu_count())))
