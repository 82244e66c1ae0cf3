"""Every AWS action the code calls is allowed by the function's role and the operator policy, on the
resources docs/animl.md names, and nothing more (actions derived from the code: tests/deploy/awscalls.py).
"""

from __future__ import annotations

import pytest

from tests.deploy import awscalls, checks
from tests.deploy.policy import REPO

STAGES = ("dev", "prod")
def skip_absent(scope: checks.Scope) -> None:
    if not scope.available():
        pytest.skip(f"{scope.start_module} is not in the package yet: nothing to derive {scope.name} from")


SCOPES = pytest.mark.parametrize("scope", checks.SCOPES, ids=lambda s: s.name.replace(" ", "-"))


@SCOPES
@pytest.mark.parametrize("stage", STAGES)
def test_every_call_is_allowed(scope: checks.Scope, stage: str) -> None:
    skip_absent(scope)
    problems = checks.missing_grants(scope, stage)
    assert not problems, "\n".join(problems)


@SCOPES
@pytest.mark.parametrize("stage", STAGES)
def test_nothing_is_granted_that_no_code_calls(scope: checks.Scope, stage: str) -> None:
    skip_absent(scope)
    problems = checks.excess_grants(scope, stage)
    assert not problems, "\n".join(problems)


@SCOPES
@pytest.mark.parametrize("stage", STAGES)
def test_grants_stay_on_the_stage_resources(scope: checks.Scope, stage: str) -> None:
    problems = checks.out_of_scope_grants(scope, stage)
    assert not problems, "\n".join(problems)


def test_every_client_names_its_service() -> None:
    """A client built from a variable service name would hide its calls from the checker."""
    modules = awscalls.discover(REPO).values()
    hidden = [site for site in awscalls.dynamic_clients(modules)
              if site[:2] not in awscalls.CLIENT_FACTORIES]
    assert not hidden, f"client(<variable>) outside the factories {awscalls.CLIENT_FACTORIES}: {hidden}"


def test_excluded_calls_still_exist() -> None:
    """An exclusion whose call site is gone must go too, or it would hide a future call."""
    calls = awscalls.scan(awscalls.discover(REPO).values())
    sites = {(c.module, c.function) for c in calls}
    for scope in checks.SCOPES:
        stale = [site for site in scope.excluded_calls if site not in sites]
        assert not stale, f"{scope.name}: excluded call sites no longer exist: {stale}"


def test_the_function_never_writes_the_maintenance_flag() -> None:
    for stage in STAGES:
        role = checks.FUNCTION.policy(stage)
        flag = checks.parameter_arn(f"/images/maintenance-mode-{stage}")
        assert role.allows("ssm:GetParameters", flag)
        assert not any(role.allows(a, flag) for a in ("ssm:PutParameter", "ssm:DeleteParameter",
                                                       "ssm:LabelParameterVersion"))
