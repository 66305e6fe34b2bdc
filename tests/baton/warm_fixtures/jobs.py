"""Small module-level jobs for the warm launcher's tests, loaded by a real code server.

They use the in-process executor, as Baton's jobs do (the multiprocess one spawns a Python
per step, which would hide the launcher's cost).

Each op writes a marker into ``$WARM_TEST_OUT`` (the launcher's environment reaches the
forked worker), so a test can see that the op's code ran, in which process, and when.
"""

import os
import time
from pathlib import Path

from dagster import Definitions, OpExecutionContext, in_process_executor, job, op


def _mark(context: OpExecutionContext, name: str) -> None:
    out = Path(os.environ["WARM_TEST_OUT"])
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{context.run_id}.{name}").write_text(f"{os.getpid()} {time.time()}")


@op
def quick(context: OpExecutionContext) -> int:
    _mark(context, "quick")
    return 1


@job(executor_def=in_process_executor)
def quick_job() -> None:
    quick()


@op
def linger(context: OpExecutionContext) -> None:
    # Long enough for a test to kill the launcher, the zygote or the worker meanwhile; a test
    # that needs to know the op is still running at some moment releases it with a marker
    # instead of racing a timer.
    _mark(context, "started")
    release = Path(os.environ["WARM_TEST_OUT"]) / f"{context.run_id}.release"
    deadline = time.monotonic() + float(os.environ.get("WARM_TEST_LINGER", "8"))
    while time.monotonic() < deadline and not release.exists():
        time.sleep(0.05)
    _mark(context, "done")


@job(executor_def=in_process_executor)
def linger_job() -> None:
    linger()


defs = Definitions(jobs=[quick_job, linger_job])
