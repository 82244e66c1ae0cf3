"""The eight steps of the production deployment (docs/animl.md, The production deployment), as data.

Each step says what it does, how to check it and how to back it out; each of its parts is done by
the tool or by a person, with the command that does it. The same text feeds `--dry-run`, the
instructions the runbook shows before a person acts, and RUNBOOK.md (`markdown()`, checked by a
test), so the three cannot drift apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from animl_ingest_cli.errors import InputError

AUTO, MANUAL, SKIP = "auto", "manual", "skip"

# Part.automated: who does the part.
ALWAYS = "always"  # the tool
VISIBLE = "visible"  # the tool looks; the operator confirms what it cannot see
# or an Options field: the tool when that option is given, else a person; None: always a person
WHO_MD = {
    None: "by hand",
    ALWAYS: "the tool",
    VISIBLE: "the tool; you confirm what it cannot see",
    "distribution_id": "the tool with `--distribution-id`, else by hand",
    "api_dir": "the tool with `--api-dir`, else by hand",
}


@dataclass
class Options:
    """What the operator gave the run. Saved with the run, so `--resume` needs none of it again."""

    distribution_id: str | None = None  # the frontend's CloudFront distribution
    api_dir: str | None = None  # an animl-api checkout, for the database backup
    drain_timeout: float = 3600.0
    drain_interval: float = 60.0
    drain_stable: int = 3

    def __post_init__(self) -> None:
        if self.drain_timeout < 0 or self.drain_interval < 0 or self.drain_stable < 1:
            raise InputError("--drain-timeout and --drain-interval must be >= 0, --drain-stable >= 1")

    @classmethod
    def merged(cls, saved: dict[str, Any], given: dict[str, Any]) -> Options:
        """The saved run's options, overridden by those given now (None: not given; an empty
        string drops a saved distribution id or api dir: that part is then done by hand)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in saved.items() if k in known}
        values.update({k: v for k, v in given.items() if k in known and v is not None})
        cleaned: dict[str, Any] = {k: (v or None) if isinstance(v, str) else v for k, v in values.items()}
        return cls(**cleaned)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Part:
    name: str
    how: str  # what the tool does, or what a person does and checks
    commands: tuple[str, ...] = ()  # the commands that do it (by hand, or what the tool runs for you)
    automated: str | None = None  # see WHO_MD
    changes: bool = False  # the tool changes the stage: on prod it asks for the stage name first
    local: bool = True  # applies to the local stage (no frontend, CloudFront, animl-api there)


@dataclass(frozen=True)
class Step:
    number: int
    name: str
    title: str
    does: str
    verify: str
    back_out: str
    parts: tuple[Part, ...]


FRONTEND_DEPLOY = "npm run deploy-{stage}"
INVALIDATE = ("aws cloudfront create-invalidation --distribution-id {distribution} --paths '/*' "
              "--profile animl",
              "aws cloudfront wait invalidation-completed --distribution-id {distribution} "
              "--id <the invalidation's Id> --profile animl")
CACHE_HOW = ("Clear the frontend's CloudFront cache (every path) and wait until the invalidation is "
             "Completed, so that browsers get the frontend just deployed.")

STEPS: tuple[Step, ...] = (
    Step(1, "frontend-maintenance-on", "Frontend maintenance on",
         "Users see the maintenance page instead of Animl, so nobody labels images or starts a bulk "
         "upload while the deployment runs.",
         "Open the frontend in a private browser window: the maintenance page shows.",
         "Set `IN_MAINTENANCE_MODE` back to `false`, deploy the frontend and clear the cache again "
         "(the same commands).",
         (Part("frontend-flag-on",
               "In your animl-frontend checkout set `IN_MAINTENANCE_MODE` to `true` in `src/config.js`, "
               "then deploy the frontend.", (FRONTEND_DEPLOY,), local=False),
          Part("invalidate-cache", CACHE_HOW, INVALIDATE, "distribution_id", changes=True, local=False))),
    Step(2, "no-bulk-upload-in-flight", "No bulk upload half-way",
         "A bulk upload whose zip is still being unzipped when the API is redeployed is left half-done. "
         "Its AWS Batch job and its `animl-ingest-{stage}-batch-<uuid>` stack show it: the tool "
         "stops the run while any job is active or any such stack exists (wait for it, then "
         "`--resume`). When it cannot see them (no parameter `/images/batch-queue-{stage}`, or no "
         "permission), it says so and you check by hand.",
         "Nothing is listed: no Batch job SUBMITTED, PENDING, RUNNABLE, STARTING or RUNNING, no batch "
         "stack other than DELETE_COMPLETE. In the database, a batch with `created` but no "
         "`uploadComplete`, `processingStart` or `ingestionComplete` is also one still being "
         "unzipped.",
         "Nothing to back out: this step only looks. A batch stack that stays (CREATE_FAILED, "
         "ROLLBACK_COMPLETE, DELETE_FAILED) is a stuck batch: see \"Recover from a stuck batch\" in "
         "RUNBOOK.md.",
         (Part("check-bulk-uploads",
               "Check that no AWS Batch job is active in the job queue named by "
               "`/images/batch-queue-{stage}` and that no `animl-ingest-{stage}-batch-*` stack exists.",
               ("Q=$(aws ssm get-parameter --name /images/batch-queue-{stage} --query Parameter.Value "
                "--output text --profile animl)",
                "for s in SUBMITTED PENDING RUNNABLE STARTING RUNNING; do aws batch list-jobs "
                "--job-queue \"$Q\" --job-status $s --query 'jobSummaryList[].[jobName,status]' "
                "--output text --profile animl; done",
                "aws cloudformation list-stacks --query \"StackSummaries[?starts_with(StackName, "
                "'animl-ingest-{stage}-batch-') && StackStatus!='DELETE_COMPLETE'].[StackName,"
                "StackStatus]\" --output text --profile animl"),
               VISIBLE),)),
    Step(3, "ingest-maintenance-on", "Ingest maintenance on",
         "From now on the ingest function parks every image and zip that arrives (in "
         "`animl-images-parkinglot-{stage}`, same key) instead of ingesting it. The command returns "
         "once the function's 15 s cache of the flag has run out.",
         "`animl-ingest maintenance status --stage {stage}` prints `on`.",
         "`animl-ingest maintenance off --stage {stage}`, then `animl-ingest unpark --stage {stage}` "
         "(steps 7 and 8).",
         (Part("ingest-maintenance-on", "Turn ingest maintenance on and wait until the function obeys it.",
               ("animl-ingest maintenance on --stage {stage}",), ALWAYS, changes=True),)),
    Step(4, "drain-queues", "Wait until all work is done",
         "Waits until every Animl work queue counts 0 visible, 0 in flight and 0 delayed for "
         "{stable} polls in a row, no Batch job is active and no batch stack is left. Dead-letter "
         "queues are reported, not waited on. After {timeout} s the step fails (maintenance stays on).",
         "`animl-ingest queues list --stage {stage}`: every queue but the DLQs at 0 0 0.",
         "Nothing to back out: this step only waits. When the work does not drain, look with "
         "`animl-ingest queues list --stage {stage}`, then `--resume` (with a longer `--drain-timeout` "
         "if it is only slow), or give the deployment up: steps 7 and 8 put everything back.",
         (Part("drain-queues", "Poll the queues, Batch jobs and batch stacks until they are idle.",
               ("animl-ingest queues drain --stage {stage} --timeout {timeout} --interval {interval} "
                "--stable {stable}",), ALWAYS),)),
    Step(5, "backup-db", "Back up the database",
         "A JSON export of every collection of `animl-{stage}`, taken while nothing writes to it, to "
         "restore from if the API deployment goes wrong. The export needs `mongoexport` (MongoDB "
         "Database Tools) and the AWS profile `animl`.",
         "A new folder `backups/animl-{stage}/<UTC time>/` in the animl-api checkout holds one `.json` "
         "file per collection.",
         "Nothing to back out. Keep the folder until the release has proved itself.",
         (Part("backup-db", "Run the export in your animl-api checkout.",
               ("cd {api_dir} && AWS_PROFILE=animl npm run export-db-{stage}",), "api_dir",
               local=False),)),
    Step(6, "deploy-api", "Deploy animl-api",
         "The release of animl-api this deployment is for.",
         "The deploy ends without an error; the API answers once the frontend is back (step 7).",
         "Deploy the previous release again (check it out, the same command); when the release changed "
         "data, restore the database from the backup of step 5 (`mongoimport`, one file per collection).",
         (Part("deploy-api", "In your animl-api checkout, on the release to deploy, deploy it.",
               ("npm run deploy-{stage}",), local=False),)),
    Step(7, "maintenance-off", "Maintenance off",
         "The frontend comes back and the ingest function ingests again. Ingest maintenance is a "
         "parameter here, so the ingest function needs no deploy for it.",
         "`animl-ingest maintenance status --stage {stage}` prints `off`; the frontend (private "
         "window) shows Animl again.",
         "Turn maintenance on again: `animl-ingest maintenance on --stage {stage}`, and the frontend's "
         "flag to `true`, deploy, clear the cache (step 1).",
         (Part("frontend-flag-off",
               "In your animl-frontend checkout set `IN_MAINTENANCE_MODE` to `false` in `src/config.js`, "
               "then deploy the frontend.", (FRONTEND_DEPLOY,), local=False),
          Part("ingest-maintenance-off", "Turn ingest maintenance off and wait until the function obeys it.",
               ("animl-ingest maintenance off --stage {stage}",), ALWAYS, changes=True),
          Part("invalidate-cache", CACHE_HOW, INVALIDATE, "distribution_id", changes=True, local=False))),
    Step(8, "unpark", "Unpark",
         "Every object parked during the deployment goes back to the ingestion bucket under the same "
         "key (copied, verified, then deleted from the parking lot), so the ingest function ingests "
         "it now.",
         "`animl-ingest unpark --stage {stage} --dry-run` says 0 to move.",
         "Nothing to back out: each image is ingested as if it had just arrived. An object that could "
         "not be moved stays in the parking lot (the step fails): fix the cause, then `--resume`.",
         (Part("unpark", "Move the parking lot back to the ingestion bucket, verified.",
               ("animl-ingest unpark --stage {stage}",), ALWAYS, changes=True),)),
)
STEP_NAMES = tuple(s.name for s in STEPS)


def step_named(name: str) -> Step:
    for step in STEPS:
        if step.name == name:
            return step
    raise KeyError(name)


def mode(part: Part, stage: str, options: Options) -> str:
    """Who does the part on this run: the tool (AUTO), a person (MANUAL), or nobody (SKIP)."""
    if stage == "local" and not part.local:
        return SKIP
    if part.automated is None:
        return MANUAL
    if part.automated in (ALWAYS, VISIBLE):
        return AUTO
    return AUTO if getattr(options, part.automated) else MANUAL


def _number(x: float) -> str:
    return f"{x:g}"


def fill(text: str, stage: str, options: Options | None = None) -> str:
    """A step's text for this stage and these options (placeholders where an option is missing)."""
    o = options or Options()
    return text.format_map({
        "stage": stage,
        "distribution": o.distribution_id or "<frontend distribution id>",
        "api_dir": o.api_dir or "<your animl-api checkout>",
        "timeout": _number(o.drain_timeout), "interval": _number(o.drain_interval),
        "stable": o.drain_stable})


def part_text(part: Part, stage: str, options: Options, indent: str = "") -> str:
    """How a part is done and its commands, for the screen."""
    lines = [indent + fill(part.how, stage, options)]
    lines += [f"{indent}    {fill(c, stage, options)}" for c in part.commands]
    return "\n".join(lines)


def plan_text(step: Step, stage: str, options: Options, state: str | None = None) -> str:
    """One step as the dry run and the on-screen instructions show it."""
    head = f"{step.number}. {step.name}: {step.title}" + (f"  [{state}]" if state else "")
    lines = [head, f"   {fill(step.does, stage, options)}"]
    for part in step.parts:
        who = {AUTO: "the tool", MANUAL: "you", SKIP: "skipped"}[mode(part, stage, options)]
        if who == "the tool" and part.changes and stage == "prod":
            who += " (after you type the stage name; --yes skips that)"
        lines.append(f"   - {part.name}, {who}:")
        lines.append(part_text(part, stage, options, indent="     "))
    lines.append(f"   check: {fill(step.verify, stage, options)}")
    lines.append(f"   back out: {fill(step.back_out, stage, options)}")
    return "\n".join(lines)


def markdown(stage: str = "prod") -> str:
    """The steps as RUNBOOK.md shows them (the section between its `runbook-steps` markers)."""
    o = Options()
    out: list[str] = []
    for step in STEPS:
        out += [f"### {step.number}. {step.title} (`{step.name}`)", "", fill(step.does, stage, o), ""]
        for part in step.parts:
            who = WHO_MD[part.automated]
            if part.changes:
                who += "; on prod it first asks you to type `prod`, which `--yes` skips"
            out.append(f"- **{part.name}** ({who}): {fill(part.how, stage, o)}")
            if part.commands:
                out += ["", "  ```bash", *(f"  {fill(c, stage, o)}" for c in part.commands), "  ```"]
            out.append("")
        out += [f"**Check:** {fill(step.verify, stage, o)}", "",
                f"**Back out:** {fill(step.back_out, stage, o)}", ""]
    return "\n".join(out).rstrip() + "\n"
