"""The saved run: written atomically, read back whole, refused when it is not a run of the stage."""

from __future__ import annotations

import json

import pytest

from animl_ingest_cli.errors import InputError, RefusedError
from animl_ingest_cli.runbook import state
from animl_ingest_cli.runbook.steps import STEP_NAMES


def new_run(stage: str = "prod") -> state.RunState:
    return state.RunState.new(stage, STEP_NAMES, {"distribution_id": "E2EXAMPLE"})


def test_save_then_load_gives_the_same_run_and_leaves_no_temporary_file() -> None:
    run = new_run()
    run.steps[0].state, run.steps[0].parts = state.DONE, {"frontend-flag-on": {"state": "done"}}
    run.steps[1].state, run.steps[1].detail = state.FAILED, "check-bulk-uploads: a bulk upload is under way"
    path = state.save(run)
    assert path == state.state_path("prod") and path.parent.name == "runbook"
    assert [p.name for p in path.parent.iterdir()] == ["prod.json"]
    back = state.load("prod", STEP_NAMES)
    assert back is not None and back.to_dict() == run.to_dict()
    assert not back.complete and back.first_unfinished() is back.steps[1]
    assert state.load("dev", STEP_NAMES) is None


def test_a_failed_write_keeps_the_old_state(monkeypatch: pytest.MonkeyPatch) -> None:
    run = new_run()
    state.save(run)
    run.steps[0].state = state.DONE

    def broken(*_a, **_k):
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(state.os, "replace", broken)
        with pytest.raises(OSError):
            state.save(run)
    assert state.load("prod", STEP_NAMES).steps[0].state == state.PENDING
    assert [p.name for p in state.runbook_dir().iterdir()] == ["prod.json"]


def test_steps_follow_the_runbook_order_whatever_the_file_holds() -> None:
    data = new_run().to_dict()
    data["steps"] = [{"name": "unpark", "state": "done"}, {"name": "retired-step", "state": "done"}]
    run = state.RunState.from_dict(data, STEP_NAMES)
    assert [r.name for r in run.steps] == list(STEP_NAMES)
    assert run.step("unpark").state == "done" and run.step("backup-db").state == "pending"


@pytest.mark.parametrize("content", ["{not json", json.dumps({"version": 99, "stage": "prod"}),
                                     json.dumps({"version": 1, "stage": "dev", "steps": []}),
                                     json.dumps({"version": 1, "stage": "prod"}), "[]"])
def test_an_unreadable_state_is_a_clear_error(content: str) -> None:
    state.runbook_dir().mkdir(parents=True)
    state.state_path("prod").write_text(content)
    with pytest.raises(InputError, match="runbook state .*prod.json"):
        state.load("prod", STEP_NAMES)


def test_archive_keeps_the_run_under_its_id() -> None:
    run = new_run()
    state.save(run)
    kept = state.archive(run)
    assert kept.name == f"prod-{run.run_id}.json" and not state.state_path("prod").exists()
    assert json.loads(kept.read_text())["run_id"] == run.run_id


def test_one_run_per_stage_at_a_time() -> None:
    with state.StageLock("prod"):
        with pytest.raises(RefusedError, match="another runbook run for prod"):
            with state.StageLock("prod"):
                pass
        with state.StageLock("dev"):
            pass
    with state.StageLock("prod"):
        pass
