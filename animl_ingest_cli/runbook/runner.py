"""Running the production deployment: each part of each step done by the tool (and verified) or
confirmed by the operator, every result saved and written to the audit log.

A stop never undoes anything: a "no", a failed step or Ctrl-C leaves the system as it is (ingest
maintenance on, once step 3 is done, until step 7 turns it off), the state saved, and `--resume`
goes on from the first unfinished step without redoing the finished ones or their finished parts.
Talking to the operator goes through an `Operator`, so this module never prints or prompts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from animl_ingest_cli import audit
from animl_ingest_cli.context import StageContext
from animl_ingest_cli.errors import AnimlError, InputError, RefusedError, StoreError, WaitTimeout
from animl_ingest_cli.ops import cloudfront, maintenance
from animl_ingest_cli.ops.batches import active_jobs, busy_descriptions, job_queue, live_batch_stacks
from animl_ingest_cli.ops.moves import MoveOutcome
from animl_ingest_cli.ops.queues import Snapshot, drain
from animl_ingest_cli.ops.unpark import unpark
from animl_ingest_cli.runbook import backup
from animl_ingest_cli.runbook import state as saved
from animl_ingest_cli.runbook.state import DONE, FAILED, PENDING, SKIPPED, RunState, StepRecord, now
from animl_ingest_cli.runbook.steps import (
    AUTO,
    MANUAL,
    SKIP,
    STEP_NAMES,
    STEPS,
    Options,
    Part,
    Step,
    fill,
    mode,
    part_text,
)

COMMAND = "runbook prod-deploy"


class Operator(Protocol):
    """The person running the deployment, as the runbook needs them."""

    def show(self, text: str) -> None:
        """Progress and instructions."""

    def confirm(self, question: str) -> bool:
        """Yes to go on, no to stop. May raise RefusedError (no answer) or KeyboardInterrupt."""

    def confirm_stage(self, action: str) -> None:
        """Before the tool changes the stage: on prod, raises RefusedError unless confirmed."""

    def on_poll(self, snap: Snapshot, streak: int, stable: int) -> None:
        """Each poll while the queues drain."""

    def on_outcome(self, outcome: MoveOutcome) -> None:
        """Each object unpark moved (or failed to)."""


class RunStopped(RefusedError):
    """The run stopped before its end: declined, not confirmed, or a step failed (exit 3)."""

    def __init__(self, message: str, run: RunState) -> None:
        super().__init__(message)
        self.run = run


class _Declined(Exception):
    """The operator answered no (or gave no answer) at a prompt."""


@dataclass
class _Done:
    detail: str
    data: dict[str, Any] | None = None


def prepare(stage: str, given: dict[str, Any], *, resume: bool = False, restart: bool = False) -> RunState:
    """The run to go on with: the saved one (`resume`), or a new one. A new run while an unfinished
    one is saved needs `restart` (its file is kept under its run id), so that a forgotten `--resume`
    never starts the deployment over by accident."""
    if resume and restart:
        raise InputError("--resume and --restart exclude each other")
    run = saved.load(stage, STEP_NAMES)
    if resume:
        if run is None:
            raise InputError(f"no saved runbook run for {stage}: nothing to resume (start one without "
                             f"--resume)")
        run.options = Options.merged(run.options, given).to_dict()
        return run
    if run is not None and not run.complete and not restart:
        rec = run.first_unfinished()
        assert rec is not None
        raise InputError(f"an unfinished run of {stage} (started {run.started}) stopped at "
                         f"{describe_stop(rec)}: continue it with --resume, or start over with --restart")
    return RunState.new(stage, STEP_NAMES, Options.merged({}, given).to_dict())


def describe_stop(rec: StepRecord) -> str:
    step = next(s for s in STEPS if s.name == rec.name)
    return f"step {step.number} {rec.name} ({rec.state}{': ' + rec.detail if rec.detail else ''})"


def check_options(run: RunState) -> None:
    """Fail before anything changes when an option the unfinished steps need is wrong."""
    options = Options.merged(run.options, {})
    todo = {rec.name for rec in run.steps if not rec.finished_ok}
    if options.distribution_id and todo & {"frontend-maintenance-on", "maintenance-off"}:
        cloudfront.check_distribution_id(options.distribution_id)
    if options.api_dir and "backup-db" in todo and run.stage != "local":
        options.api_dir = str(backup.check_checkout(options.api_dir, run.stage))
        run.options = options.to_dict()


class Runbook:
    """One run of the steps on one stage."""

    def __init__(self, ctx: StageContext, run: RunState, operator: Operator, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.ctx = ctx
        self.run = run
        self.operator = operator
        self.sleep = sleep

    @property
    def options(self) -> Options:
        return Options.merged(self.run.options, {})

    # --- the run --------------------------------------------------------------------------------
    def go(self) -> RunState:
        """Every unfinished step in order. Raises RunStopped, or KeyboardInterrupt after saving."""
        check_options(self.run)
        old = saved.load(self.ctx.stage, STEP_NAMES)
        if old is not None and old.run_id != self.run.run_id:
            saved.archive(old)
        resumed = old is not None and old.run_id == self.run.run_id
        saved.save(self.run)
        self._audit(phase="resume" if resumed else "start", options=self.run.options)
        for step in STEPS:
            self._step(step)
        if self.run.finished is None:
            self.run.finished = now()
            saved.save(self.run)
            self._audit(phase="complete")
        return self.run

    def _step(self, step: Step) -> None:
        rec = self.run.step(step.name)
        if rec.finished_ok:
            return
        options = self.options
        modes = {p.name: mode(p, self.ctx.stage, options) for p in step.parts}
        if all(m == SKIP for m in modes.values()):
            self._finish(step, rec, SKIPPED, f"does not apply to the {self.ctx.stage} stage")
            return
        rec.started = rec.started or now()
        rec.state, rec.detail, rec.finished = PENDING, None, None
        saved.save(self.run)
        self.operator.show(f"\nstep {step.number}/{len(STEPS)} {step.name}: {step.title}\n"
                           f"  {fill(step.does, self.ctx.stage, options)}")
        for part in step.parts:
            if part.name in rec.parts:
                self.operator.show(f"  {part.name}: done earlier ({rec.parts[part.name].get('detail')})")
                continue
            if modes[part.name] == SKIP:
                rec.parts[part.name] = {"state": SKIPPED, "finished": now()}
                continue
            self._part(step, part, modes[part.name], rec)
        details = {name: p["detail"] for name, p in rec.parts.items() if p.get("detail")}
        summary = ("; ".join(details.values()) if len(step.parts) == 1
                   else "; ".join(f"{name}: {d}" for name, d in details.items()))
        self._finish(step, rec, DONE, summary or None)
        self.operator.show(f"  check: {fill(step.verify, self.ctx.stage, options)}")

    def _finish(self, step: Step, rec: StepRecord, state: str, detail: str | None) -> None:
        rec.state, rec.detail, rec.finished = state, detail, now()
        saved.save(self.run)
        self._audit(step=step.name, result=state, detail=detail)

    def _part(self, step: Step, part: Part, how: str, rec: StepRecord) -> None:
        stage, options = self.ctx.stage, self.options
        acting = False  # the tool has started changing or checking something (not just asking)
        try:
            if how == MANUAL:
                self.operator.show(f"  {part.name}, for you to do:\n"
                                   + part_text(part, stage, options, indent="    "))
                self._ask(f"Is {part.name} done?")
                done = _Done("confirmed by the operator")
            else:
                if part.changes and stage == "prod":
                    self._ask_stage(f"{step.name}: {part.name}")
                self.operator.show(f"  {part.name}: {fill(part.how, stage, options)}")
                acting = True
                done = self._auto(step, part)
            by = "tool" if how == AUTO else "operator"
            rec.parts[part.name] = {"state": DONE, "finished": now(), "by": by, "detail": done.detail,
                                    **({"data": done.data} if done.data else {})}
            saved.save(self.run)
            self._audit(step=step.name, part=part.name, result=DONE, by=by, detail=done.detail,
                        **({"data": done.data} if done.data else {}))
        except _Declined as exc:
            rec.detail = f"{part.name}: not confirmed ({exc})"
            saved.save(self.run)
            self._audit(step=step.name, part=part.name, result="declined", detail=str(exc))
            raise RunStopped(f"stopped at step {step.number} {step.name}: {part.name} not confirmed "
                             f"({exc}). "
                             f"{self._safety()} Run again with --resume to go on from there.",
                             self.run) from None
        except KeyboardInterrupt:
            rec.state = FAILED if acting else PENDING
            rec.detail = f"{part.name}: interrupted (Ctrl-C)"
            saved.save(self.run)
            self._audit(step=step.name, part=part.name, result="interrupted")
            raise
        except Exception as exc:  # noqa: BLE001 - any failure stops the run with its state saved
            message = (exc.message if isinstance(exc, AnimlError)
                       else f"unexpected {type(exc).__name__}: {exc}")
            rec.state, rec.detail = FAILED, f"{part.name}: {message}"
            saved.save(self.run)
            self._audit(step=step.name, part=part.name, result=FAILED, detail=message)
            raise RunStopped(f"step {step.number} {step.name} failed: {message}. {self._safety()} "
                             f"Fix the cause, then run again with --resume.", self.run) from None

    def _ask(self, question: str) -> None:
        try:
            yes = self.operator.confirm(question)
        except RefusedError as exc:
            raise _Declined(exc.message) from None
        if not yes:
            raise _Declined("the operator answered no")

    def _ask_stage(self, action: str) -> None:
        try:
            self.operator.confirm_stage(action)
        except RefusedError as exc:
            raise _Declined(exc.message) from None

    def _safety(self) -> str:
        on = self.run.step("ingest-maintenance-on").parts.get("ingest-maintenance-on")
        off = self.run.step("maintenance-off").parts.get("ingest-maintenance-off")
        if on and not off:
            return "Ingest maintenance stays on (arrivals are parked, nothing is lost)."
        if off:
            return "Ingest maintenance is off again."
        return "This run has not turned ingest maintenance on."

    def _audit(self, **details: Any) -> None:
        audit.record(self.ctx.stage, COMMAND, run=self.run.run_id, **details)

    # --- what the tool does ---------------------------------------------------------------------
    def _auto(self, step: Step, part: Part) -> _Done:
        if part.name == "invalidate-cache":
            return self._invalidate(step)
        actions: dict[str, Callable[[], _Done]] = {
            "check-bulk-uploads": lambda: self._check_bulk_uploads(part),
            "ingest-maintenance-on": lambda: self._maintenance(True),
            "drain-queues": self._drain,
            "backup-db": self._backup,
            "ingest-maintenance-off": lambda: self._maintenance(False),
            "unpark": self._unpark,
        }
        return actions[part.name]()

    def _invalidate(self, step: Step) -> _Done:
        distribution = self.options.distribution_id
        assert distribution is not None
        inv = cloudfront.invalidate(
            self.ctx, distribution, reference=f"animl-ingest-runbook-{self.run.run_id}-{step.name}",
            on_wait=lambda i: self.operator.show(f"  invalidation {i.id}: {i.status}, {i.waited:.0f} s"),
            sleep=self.sleep)
        return _Done(f"invalidation {inv.id} of {inv.distribution_id} completed", inv.to_dict())

    def _check_bulk_uploads(self, part: Part) -> _Done:
        if self.ctx.is_local:
            return _Done("the local stage has no Batch jobs or batch stacks")
        jobs = active_jobs(self.ctx, job_queue(self.ctx))
        stacks = live_batch_stacks(self.ctx)
        busy = busy_descriptions(jobs, stacks)
        if busy:
            raise RefusedError(f"a bulk upload is under way: {', '.join(busy)}. Wait until it has "
                               f"finished (its stack is deleted then; `animl-ingest batches list "
                               f"--stage {self.ctx.stage}` shows each); a stack that stays is a stuck "
                               f"batch (RUNBOOK.md)")
        unseen = [v.note or "" for v in (jobs, stacks) if v.items is None]
        data = {"jobs": jobs.items, "stacks": stacks.items}
        if not unseen:
            return _Done("no Batch job active, no batch stack", data)
        self.operator.show(f"  the tool cannot see everything: {'; '.join(unseen)}. Check by hand:\n"
                           + part_text(part, self.ctx.stage, self.options, indent="    "))
        self._ask("Have you checked that no bulk upload is half-way?")
        return _Done(f"nothing active among what the tool sees; {'; '.join(unseen)}: checked by the "
                     f"operator", data)

    def _maintenance(self, on: bool) -> _Done:
        word = "on" if on else "off"
        change = maintenance.set_maintenance(
            self.ctx, on, sleep=self.sleep,
            on_wait=lambda s: self.operator.show(f"  waiting {s:.1f} s until the ingest function obeys it"))
        if not change.after.maintenance == on or not change.in_force:
            raise StoreError(f"maintenance is not {word} in force on {self.ctx.stage}")
        how = "turned" if change.written else "was already"
        return _Done(f"maintenance {how} {word}, in force", change.to_dict())

    def _drain(self) -> _Done:
        o = self.options
        result = drain(self.ctx, timeout=o.drain_timeout, interval=o.drain_interval, stable=o.drain_stable,
                       on_poll=lambda snap, streak: self.operator.on_poll(snap, streak, o.drain_stable),
                       sleep=self.sleep)
        dead = [f"{q.name} holds {q.messages}" for q in result.last.dead_letters]
        if dead:
            self.operator.show(f"  dead-letter queues (not waited on): {', '.join(dead)}")
        if not result.drained:
            raise WaitTimeout(f"not drained after {result.elapsed:.0f} s: {result.last.describe()}")
        note = f"; dead-letter queues: {', '.join(dead)}" if dead else ""
        return _Done(f"drained ({result.polls} polls, {result.elapsed:.0f} s){note}", result.to_dict())

    def _backup(self) -> _Done:
        assert self.options.api_dir is not None
        made = backup.export_db(self.options.api_dir, self.ctx.stage,
                                on_line=lambda line: self.operator.show(f"    {line}"))
        return _Done(f"{made.files} .json file(s), {made.bytes} bytes in {made.folder}", made.to_dict())

    def _unpark(self) -> _Done:
        summary = unpark(self.ctx, on_outcome=self.operator.on_outcome, sleep=self.sleep,
                         on_wait=lambda s: self.operator.show(f"  waiting {s:.1f} s for maintenance off"))
        counts = {k: v for k, v in summary.to_dict().items() if k in ("moved", "already", "failed")}
        if summary.failed:
            raise StoreError(f"{summary.failed} object(s) not moved (each left in the parking lot)")
        left = next(iter(self.ctx.store("parkinglot").list()), None)
        if left is not None:
            raise StoreError(f"the parking lot still holds objects after the unpark ({left.key!r} ...)")
        return _Done(f"moved {summary.moved}, already there {summary.already}; the parking lot is empty",
                     counts)


def prod_deploy(ctx: StageContext, operator: Operator, given: dict[str, Any], *, resume: bool = False,
                restart: bool = False, sleep: Callable[[float], None] = time.sleep) -> RunState:
    """The whole deployment: a new run, or the saved one with `resume` (a complete one is returned
    as it is). One run per stage at a time."""
    with saved.StageLock(ctx.stage):
        run = prepare(ctx.stage, given, resume=resume, restart=restart)
        if run.complete and run.finished:
            return run
        return Runbook(ctx, run, operator, sleep=sleep).go()


def plan(stage: str, given: dict[str, Any], *, resume: bool = False) -> tuple[RunState | None, Options]:
    """What a run would do, reading only: the saved run (with `resume`; its steps' states show what
    would be skipped) and the options it would use, checked as the run checks them."""
    run = saved.load(stage, STEP_NAMES)
    if resume and run is None:
        raise InputError(f"no saved runbook run for {stage}: nothing to resume (start one without --resume)")
    base = run.options if resume and run is not None else {}
    preview = RunState.new(stage, STEP_NAMES, Options.merged(base, given).to_dict())
    if resume and run is not None:
        preview.steps = run.steps
    check_options(preview)
    return (run if resume else None), Options.merged(preview.options, {})


def status(stage: str) -> dict[str, Any]:
    """The saved run of the stage, step by step in order (every step pending when there is none)."""
    run = saved.load(stage, STEP_NAMES)
    steps = run.steps if run is not None else [StepRecord(n) for n in STEP_NAMES]
    out = []
    for step, rec in zip(STEPS, steps, strict=True):
        out.append({"number": step.number, "name": rec.name, "title": step.title, "state": rec.state,
                    "started": rec.started, "finished": rec.finished, "detail": rec.detail,
                    "parts": rec.parts})
    return {"stage": stage, "run_id": run.run_id if run else None, "started": run.started if run else None,
            "finished": run.finished if run else None, "complete": bool(run and run.complete),
            "state_file": str(saved.state_path(stage)), "steps": out}
