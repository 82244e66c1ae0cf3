"""The steps as data: the order of docs/animl.md (The production deployment), text that renders for
every stage, and RUNBOOK.md made from the same text (so the command and the document cannot drift)."""

from __future__ import annotations

import re

import pytest

from animl_ingest_cli.runbook.steps import (
    AUTO,
    MANUAL,
    SKIP,
    STEPS,
    WHO_MD,
    Options,
    fill,
    markdown,
    mode,
    plan_text,
)
from tests.conftest import REPO

RUNBOOK = REPO / "RUNBOOK.md"
BEGIN = re.compile(r"<!-- runbook-steps: begin[^>]*-->\n")
END = "<!-- runbook-steps: end -->"


def test_eight_steps_in_the_contract_order() -> None:
    assert [s.number for s in STEPS] == list(range(1, 9))
    assert [s.name for s in STEPS] == [
        "frontend-maintenance-on", "no-bulk-upload-in-flight", "ingest-maintenance-on", "drain-queues",
        "backup-db", "deploy-api", "maintenance-off", "unpark"]
    for step in STEPS:
        assert len({p.name for p in step.parts}) == len(step.parts)
        assert step.title and step.does and step.verify and step.back_out
        assert all(p.automated in WHO_MD for p in step.parts)


@pytest.mark.parametrize("stage", ["local", "dev", "prod"])
def test_every_text_renders_for_every_stage(stage: str) -> None:
    given = Options(distribution_id="E2EXAMPLE", api_dir="/src/animl-api", drain_timeout=90)
    for options in (Options(), given):
        for step in STEPS:
            text = plan_text(step, stage, options)
            assert "{" not in text.replace("{}", "") and step.name in text
        assert "--timeout 90 " in plan_text(STEPS[3], stage, given)
    assert "<frontend distribution id>" in fill(STEPS[0].parts[1].commands[0], stage)


def test_who_does_what() -> None:
    invalidate = STEPS[0].parts[1]
    backup = STEPS[4].parts[0]
    assert mode(invalidate, "prod", Options()) == MANUAL
    assert mode(invalidate, "prod", Options(distribution_id="E2EXAMPLE")) == AUTO
    assert mode(invalidate, "local", Options(distribution_id="E2EXAMPLE")) == SKIP
    assert mode(backup, "prod", Options(api_dir="/x")) == AUTO and mode(backup, "dev", Options()) == MANUAL
    assert mode(STEPS[5].parts[0], "prod", Options(api_dir="/x")) == MANUAL  # deploy-api: a person
    assert {mode(p, "prod", Options()) for p in STEPS[2].parts + STEPS[7].parts} == {AUTO}


def test_saved_options_and_given_ones() -> None:
    saved = Options(distribution_id="E2EXAMPLE", api_dir="/api", drain_timeout=10).to_dict()
    o = Options.merged(saved, {"drain_timeout": 99.0, "distribution_id": None, "api_dir": ""})
    assert (o.distribution_id, o.api_dir, o.drain_timeout, o.drain_stable) == ("E2EXAMPLE", None, 99.0, 3)


def test_runbook_md_holds_the_steps_as_the_command_shows_them() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    begin = BEGIN.search(text)
    assert begin and END in text, "RUNBOOK.md lost its runbook-steps markers"
    embedded = text[begin.end():text.index(END)]
    assert embedded == markdown(), ("RUNBOOK.md's steps differ from animl_ingest_cli/runbook/steps.py: "
                                    "regenerate them with `python -m animl_ingest_cli.runbook`")
    for step in STEPS:
        assert f"`{step.name}`" in embedded
        for part in step.parts:
            assert all(fill(c, "prod") in embedded for c in part.commands)


def test_runbook_md_documents_the_commands_options() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    for word in ("--resume", "--restart", "--dry-run", "--yes", "--distribution-id", "--api-dir",
                 "--drain-timeout", "--drain-interval", "--drain-stable", "runbook status", "--json",
                 "pending", "done", "failed", "skipped", "Pause ingestion for a while",
                 "Replay dead-lettered images", "Recover from a stuck batch"):
        assert word in text, word
