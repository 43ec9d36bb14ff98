"""Benchmarks' shared timer: wrap a function so that every call adds its seconds to a dict entry."""
from __future__ import annotations

import time


def timed(function, result: dict, key: str):
    """function, adding its seconds to result[key] on every call."""
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            result[key] += time.perf_counter() - started
    return wrapper
