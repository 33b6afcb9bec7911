"""Job targets for the subprocess tests (importable by the worker process)."""

import time


def sleepy(seconds: float = 60.0) -> dict:
    print("going to sleep", flush=True)
    time.sleep(seconds)
    return {"slept": seconds}


def quick(x: int = 1) -> dict:
    print("working", flush=True)
    return {"double": 2 * x}


def broken() -> dict:
    raise RuntimeError("this job is broken")
