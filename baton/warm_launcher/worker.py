"""The body of a run worker forked from the zygote: what ``dagster api execute_run`` does.

The fork inherits the zygote's imports (the point of it) and nothing else that matters: it
becomes its own session and process group (so terminate can signal everything it starts),
takes the launcher's environment and working directory, points its output at a log file, and
opens the instance and the code location itself, as a fresh ``dagster api execute_run`` would.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import sys
from collections.abc import Mapping
from typing import Any


def _detach(log_path: str) -> None:
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)


def _take_environment(env: Mapping[str, str], cwd: str) -> None:
    # The zygote may have been started by another process; the run must see the environment
    # of the process that launched it, as a run worker of the default launcher does.
    os.environ.clear()
    os.environ.update(env)
    with contextlib.suppress(OSError):
        os.chdir(cwd)
    from baton.settings import get_settings

    get_settings.cache_clear()
    # A fork copies the random module's state; two workers must not draw the same numbers.
    random.seed()


def _reset_logging() -> None:
    # The zygote's own log handler is not the run's; a fresh worker starts with none.
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)


def _restore_signals() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    from dagster._utils.interrupts import setup_interrupt_handlers

    # As the dagster CLI does: SIGTERM interrupts like SIGINT, so terminate ends the run cleanly.
    setup_interrupt_handlers()


def execute(run_id: str, serialized_instance_ref: str) -> int:
    """Run ``run_id`` to its end in this process; the exit code for the worker."""
    from dagster._cli.api import _execute_run_command_body
    from dagster._core.instance import DagsterInstance, InstanceRef
    from dagster._serdes import deserialize_value
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts():
        instance_ref = deserialize_value(serialized_instance_ref, InstanceRef)
        with DagsterInstance.from_ref(instance_ref) as instance:
            return _execute_run_command_body(
                run_id, instance, lambda _event: None, set_exit_code_on_failure=False
            )


def run_forked(request: Mapping[str, Any]) -> None:
    """Called in the child right after fork; never returns."""
    code = 1
    try:
        _detach(str(request["log_path"]))
        _reset_logging()
        _restore_signals()
        _take_environment(request.get("env") or {}, str(request.get("cwd") or "/"))
        code = execute(str(request["run_id"]), str(request["instance_ref"]))
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        # Skip the zygote's atexit handlers and buffers: they are not this process's.
        os._exit(code)
