"""Maintenance mode: the SSM flag, idempotent flips, the wait until the ingest function obeys."""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest

from animl_ingest_cli import audit
from animl_ingest_cli.context import open_stage
from animl_ingest_cli.errors import InputError, RefusedError
from animl_ingest_cli.ops import maintenance as m

PARAM = "/images/maintenance-mode-dev"


def audit_entries() -> list[dict]:
    path = audit.audit_path()
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_missing_parameter_means_off(aws_mock: None) -> None:
    state = m.read_state(open_stage("dev"))
    assert (state.maintenance, state.changed, state.value) == (False, None, None)
    assert state.to_dict() == {"stage": "dev", "maintenance": False, "changed": None,
                               "parameter": PARAM, "value": None}


@pytest.mark.parametrize("value,expected", [("true", True), (" TRUE ", True), ("false", False),
                                            ("yes", False), ("", False)])
def test_the_functions_rule_for_values(aws_mock: None, value: str, expected: bool) -> None:
    boto3.client("ssm").put_parameter(Name=PARAM, Value=value or " ", Type="String")
    assert m.read_state(open_stage("dev")).maintenance is expected


def test_on_writes_true_waits_and_audits_with_old_and_new(aws_mock: None) -> None:
    sleeps = Sleeps()
    change = m.set_maintenance(open_stage("dev"), True, wait_for=16, sleep=sleeps)
    ssm = boto3.client("ssm")
    assert ssm.get_parameter(Name=PARAM)["Parameter"]["Value"] == "true"
    assert sleeps == [16]  # a real flip waits the whole cache period
    assert change.written and change.in_force and change.after.maintenance
    assert isinstance(change.after.changed, dt.datetime)
    [entry] = audit_entries()
    assert entry["command"] == "maintenance on" and entry["old"] is None and entry["new"] == "true"
    assert entry["stage"] == "dev" and entry["caller"].startswith("arn:aws:")  # moto's STS identity


def test_on_twice_is_idempotent_and_writes_once(aws_mock: None) -> None:
    ctx = open_stage("dev")
    m.set_maintenance(ctx, True, wait=False)
    version = boto3.client("ssm").get_parameter(Name=PARAM)["Parameter"]["Version"]
    change = m.set_maintenance(ctx, True, wait_for=1000, sleep=Sleeps())
    assert not change.written
    assert boto3.client("ssm").get_parameter(Name=PARAM)["Parameter"]["Version"] == version
    assert len(audit_entries()) == 1
    # the first flip happened moments ago: what is left of its wait is still waited out
    assert 990 < change.waited <= 1000


def test_off_when_missing_creates_false_without_waiting(aws_mock: None) -> None:
    sleeps = Sleeps()
    change = m.set_maintenance(open_stage("dev"), False, wait_for=16, sleep=sleeps)
    assert boto3.client("ssm").get_parameter(Name=PARAM)["Parameter"]["Value"] == "false"
    assert change.written and sleeps == []  # missing already meant off: nothing to wait for


def test_no_wait_reports_when_it_will_be_in_force(aws_mock: None) -> None:
    change = m.set_maintenance(open_stage("dev"), True, wait=False, wait_for=16)
    assert not change.in_force and change.pending == 16 and change.waited == 0
    assert change.to_dict()["in_force"] is False


def test_a_change_by_someone_else_during_the_wait_is_refused(aws_mock: None) -> None:
    ssm = boto3.client("ssm")

    def meddle(_: float) -> None:
        ssm.put_parameter(Name=PARAM, Value="false", Type="String", Overwrite=True)

    with pytest.raises(RefusedError, match="someone else"):
        m.set_maintenance(open_stage("dev"), True, wait_for=1, sleep=meddle)


def test_time_to_force_counts_from_the_last_change() -> None:
    now = dt.datetime(2024, 1, 1, 12, 0, 30, tzinfo=dt.UTC)
    changed = dt.datetime(2024, 1, 1, 12, 0, 20, tzinfo=dt.UTC)
    state = m.MaintenanceState("dev", False, changed, PARAM, "false")
    assert m.time_to_force(state, 16, now) == 6
    assert m.time_to_force(state, 5, now) == 0
    future = m.MaintenanceState("dev", False, now + dt.timedelta(minutes=5), PARAM, "false")
    assert m.time_to_force(future, 16, now) == 16  # a clock ahead of ours: never more than a full wait


def test_wait_seconds_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert m.wait_seconds() == 16
    monkeypatch.setenv(m.WAIT_ENV, "0.25")
    assert m.wait_seconds() == 0.25
    monkeypatch.setenv(m.WAIT_ENV, "soon")
    with pytest.raises(InputError):
        m.wait_seconds()


def test_local_stage_uses_the_parameters_file(tmp_path) -> None:
    ctx = open_stage("local")
    m.set_maintenance(ctx, True, wait=False)
    data = json.loads((ctx.local_root / "parameters.json").read_text())
    assert data["/images/maintenance-mode-local"]["value"] == "true"
    assert m.read_state(ctx).maintenance is True
    assert ctx.maintenance_on(max_age=0) is True  # what the ingest function reads
