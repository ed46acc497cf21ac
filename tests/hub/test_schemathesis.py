"""Schemathesis over the whole OpenAPI, against the ASGI app on a fresh store.

Every operation gets generated requests, valid ones (positive) and schema-violating ones
(negative), each sent with a valid key of one of the scopes (admin included). Checks: no
response is a server error, every status is declared, every body matches its declared
schema and media type. `make test` runs HUB_FUZZ_EXAMPLES (default 30) examples per
operation and mode (one and a half minutes on 2 cores, so the whole suite stays well inside
CI's 20 minutes); `HUB_FUZZ_EXAMPLES=1000` is the long run.
"""

from __future__ import annotations

import base64
import os
from collections import Counter
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from hub.api import create_app
from hub.keys import Scope
from tests.helpers import api_key, make_runtime

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("HUB_FUZZ_EXAMPLES", "30"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def _run_operation(operation: Any, mode: GenerationMode, tokens: list[str],
                   statuses: Counter[int], per_mode: Counter[str], failures: list[str]) -> None:
    @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None,
                         derandomize=True, phases=[hypothesis.Phase.generate],
                         suppress_health_check=list(HealthCheck))
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode),
                      token=st.sampled_from(tokens))
    def run(case: Any, token: str) -> None:
        response = case.call(headers={"Authorization": f"Bearer {token}"})
        statuses[response.status_code] += 1
        per_mode[mode.value] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except BaseException as exc:  # collect them all: one run reports every operation
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            failures.append(f"{mode.value} {operation.label} -> {response.status_code}: "
                            f"{str(exc)[:400]}")

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE  # nothing to violate (no parameters, no body)


def _webhook_key() -> str:
    """A SendGrid-style verification key (base64 DER), so its webhook checks signatures."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return base64.b64encode(key.public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
                            ).decode()


def test_whole_api_never_fails_and_keeps_its_schema(tmp_path: Path) -> None:
    # webhooks configured, so generated requests reach their signature checks
    runtime = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path,
                           twilio_auth_token="fuzz-token", sendgrid_webhook_public_key=_webhook_key())
    # every scope's key, the admin one most often so most requests get past the scope check
    # (hypothesis favours a list's first element, so the admin key leads it)
    scopes = [Scope.ADMIN, *(s for s in Scope if s is not Scope.ADMIN)]
    tokens = [api_key(runtime, scope) for scope in scopes]
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(runtime))
    statuses: Counter[int] = Counter()
    per_mode: Counter[str] = Counter()
    failures: list[str] = []
    # The inbox's SSE stream never ends by itself (it has its own tests: tests/hub/test_inbox_stream.py)
    operations = [op for op in (result.ok() for result in schema.get_all_operations())
                  if not op.path.endswith("/stream")]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _run_operation(operation, mode, tokens, statuses, per_mode, failures)
    print(f"{len(operations)} operations, {dict(per_mode)} requests, "
          f"statuses {dict(sorted(statuses.items()))}")
    assert len(operations) >= 20
    assert sum(n for code, n in statuses.items() if code >= 500) == 0, failures
    assert not failures, "\n".join(failures[:40])
