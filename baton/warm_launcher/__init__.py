"""A run launcher whose run workers are forked from a warm, pre-imported process.

Select it in ``dagster.yaml``::

    run_launcher:
      module: baton.warm_launcher
      class: WarmRunLauncher

See ``launcher.py`` (the launcher), ``zygote.py`` (the pre-started process), ``worker.py``
(what a forked worker runs) and ``client.py`` (starting and reaching the zygote).
"""

from baton.warm_launcher.launcher import WORKER_TAG, WarmRunLauncher

__all__ = ["WORKER_TAG", "WarmRunLauncher"]
