"""Which buckets an operator command may write to.

A command of a stage writes to that stage's own four buckets. Any other bucket (another stage's, or
one that is not Animl's at all) is written to only when the operator names it explicitly
(`--allow-foreign-bucket NAME`); a dead letter whose `original-bucket` says prod is otherwise left
where it is by a dev redrive. A write to a prod bucket always needs the prod confirmation (typing
`prod`; `--yes` skips it), from whichever stage the command runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from animl_ingest_cli.config import ALLOW_OPTION, is_bucket_name, is_prod_bucket
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import InputError


@dataclass(frozen=True)
class Targets:
    stage: str
    own: frozenset[str]
    allowed: frozenset[str]  # named by the operator, beyond the stage's own

    @classmethod
    def for_stage(cls, ctx: StageContext, allowed: Iterable[str] = ()) -> Targets:
        names = frozenset(allowed)
        for name in sorted(names):
            if not is_bucket_name(name):
                raise InputError(f"{ALLOW_OPTION} {name!r}: not a bucket name")
        own = frozenset(r.value for r in ctx.buckets().values() if r.value)
        return cls(ctx.stage, own, names - own)

    def refusal(self, bucket: str) -> str | None:
        """Why a write to `bucket` is refused, or None when it may go ahead."""
        if bucket in self.own or bucket in self.allowed:
            return None
        return (f"{bucket} is not one of {self.stage}'s buckets; left in place "
                f"(to write there, name it: {ALLOW_OPTION} {bucket})")

    def prod_buckets(self) -> list[str]:
        """The named prod buckets that the stage's own confirmation does not cover."""
        if self.stage == "prod":
            return []
        return sorted(b for b in self.allowed if is_prod_bucket(b))
