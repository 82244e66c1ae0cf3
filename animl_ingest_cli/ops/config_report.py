"""Every name a stage resolves to and where it came from: the first thing to check when a command
talks to the wrong bucket or account. Secrets are never read here, only where they would come from."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from animl_ingest_cli import aws
from animl_ingest_cli.audit import audit_path
from animl_ingest_cli.config import REGION, local_dir, maintenance_flag, state_dir
from animl_ingest_cli.context import StageContext


@dataclass
class Setting:
    name: str
    value: str | None
    source: str  # default | ssm | local (the local stage's parameters.json) | env | secret | missing
    where: str | None = None  # the SSM parameter, environment variable or file behind it

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "source": self.source, "where": self.where}


def _from_env(name: str, variables: tuple[str, ...], value: str | None,
              default_where: str | None = None) -> Setting:
    """`value` as resolved, attributed to the first of `variables` that is set, else the default."""
    for var in variables:
        if os.environ.get(var):
            return Setting(name, value, "env", var)
    return Setting(name, value, "default", default_where)


def resolve(ctx: StageContext, given_stage: str | None = None) -> list[Setting]:
    """`given_stage`: the --stage value the command got (typer fills it from ANIML_STAGE too)."""
    names = ctx.names
    param_source = "local" if ctx.is_local else "ssm"
    env_stage = (os.environ.get("ANIML_STAGE") or "").strip()
    out = [Setting("stage", ctx.stage, "env" if env_stage == ctx.stage else
                   "option" if given_stage else "default", "ANIML_STAGE" if env_stage == ctx.stage else None)]
    if ctx.is_local:
        out.append(_from_env("local-dir", ("ANIML_LOCAL_DIR",), str(ctx.local_root or local_dir())))
    else:
        session = aws.session()
        out.append(_from_env("region", aws.REGION_ENV, session.region_name or REGION))
        out.append(_from_env("endpoint", ("AWS_ENDPOINT_URL",), os.environ.get("AWS_ENDPOINT_URL"),
                             "AWS itself"))
        profile = session.profile_name
        out.append(_from_env("profile", ("AWS_PROFILE",), profile if profile != "default" else None,
                             "the 'animl' profile when set up, else boto3's default chain"))

    for kind, r in ctx.buckets().items():
        value = ctx.store(kind).uri() if ctx.is_local else r.value  # local: the folder
        out.append(Setting(f"{kind}-bucket", value, param_source if r.source == "ssm" else r.source,
                           r.where))

    labels = {label: name for label, name in names.ssm_names().items() if not label.endswith("-bucket")}
    found = ctx.params.get_many(list(labels.values()))
    for label, name in labels.items():
        p = found.get(name)
        if label == "maintenance-mode":
            value = ("on" if maintenance_flag(p.value) else "off") if p else "off (parameter missing)"
            out.append(Setting(label, value, param_source if p else "default", name))
        elif p:
            out.append(Setting(label, p.value, param_source, name))
        elif label == "api-url" and ctx.is_local:
            out.append(Setting(label, "the embedded local catalog", "default", name))
        else:
            out.append(Setting(label, None, "missing", name))

    out.append(_api_key(ctx))
    out.append(Setting("queue-prefixes", " ".join(names.queue_prefixes), "default"))
    out.append(Setting("batch-stack-prefix", names.batch_stack_prefix, "default"))
    out.append(_from_env("state-dir", ("ANIML_STATE_DIR", "XDG_STATE_HOME"), str(state_dir())))
    out.append(Setting("audit-log", str(audit_path()), "default", "<state-dir>/audit.jsonl"))
    return out


def _api_key(ctx: StageContext) -> Setting:
    """Where the API key would come from (as the context resolves it); its value is never shown."""
    r = ctx.api_key_source()
    shown = {"env": "(set, not shown)", "default": "(none needed by the embedded local catalog)",
             "secret": "(read when needed, not shown)"}[r.source]
    return Setting("api-key", shown, r.source, r.where)
