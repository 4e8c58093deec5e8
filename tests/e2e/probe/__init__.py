"""The probe function (probe.py), as the local stack's runner sees a function of the template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devstack.template import FunctionSpec


def probe_spec(timeout: int = 5, reserved_concurrency: Any = None) -> FunctionSpec:
    return FunctionSpec(
        name="Probe",
        code_uri=Path(__file__).resolve().parent,
        handler="probe.handler",
        timeout=timeout,
        environment={},
        triggers=[],
        dead_letter_target=None,
        max_retry_attempts=0,
        reserved_concurrency=reserved_concurrency,
    )
