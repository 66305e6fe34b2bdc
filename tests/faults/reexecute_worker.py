"""One re-execution "from failure" in its own process (Dagster's in-process execution
deadlocks on the logging lock when threads share it), for the concurrent re-execution test.

``python -m tests.faults.reexecute_worker INSTANCE_REF PARENT_RUN_ID BATON_DB_URL`` prints
``success`` or ``failure``.
"""

from __future__ import annotations

import sys

from dagster import DagsterInstance, ReexecutionOptions, build_reconstructable_job, execute_job
from dagster._core.instance.ref import InstanceRef
from dagster._serdes import deserialize_value

from tests.orchestration_defs.test_call_identity import ONCE


def main(ref: str, parent: str, url: str) -> None:
    job = build_reconstructable_job(
        "tests.orchestration_defs.test_call_identity",
        "publisher_job",
        reconstructable_args=(ONCE, url),  # type: ignore[arg-type]
    )
    with DagsterInstance.from_ref(deserialize_value(ref, InstanceRef)) as instance:
        options = ReexecutionOptions.from_failure(parent, instance)
        with execute_job(job, instance, reexecution_options=options) as result:
            sys.stdout.write("success\n" if result.success else "failure\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])
