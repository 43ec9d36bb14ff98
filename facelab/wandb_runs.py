"""Starting a W&B run, for train (a new run) and evaluate (the training's run reopened): online when asked, and
offline, with one warning, when an online run cannot start, so no result is lost; `wandb sync` uploads it later."""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any


def init_or_offline(init: Callable[[str], Any], mode: str, directory: str, what: str) -> Any:
    """init(mode)'s run; an online one that fails (no key, no network) is started offline instead.
    what: the run, as the warning names it ("W&B online run", "W&B run <id>")."""
    try:
        return init(mode)
    except Exception as error:  # wandb raises its own and network errors; offline always works
        if mode != "online":
            raise
        warnings.warn(f"{what} could not start online ({error}); logging offline instead. "
                      f"Upload later with: wandb sync {directory}/wandb/offline-run-*", stacklevel=3)
        return init("offline")
