"""Reading saved results files (``framework.results/1``) back, with their shape checked."""

from __future__ import annotations

import json
from typing import Any

from framework.errors import InputError
from framework.report import SCHEMA

RUN_KEYS: tuple[str, ...] = ("plugin", "workload", "machine", "seed", "params", "metrics",
                             "violations", "framework_version")


def load_results(path: str) -> list[dict[str, Any]]:
    """The runs of a results file.

    :raises InputError: naming the file when it cannot be read, is not JSON, has another
        schema, or a run lacks a required key.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a JSON results file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise InputError(f"{path}: expected a results document with schema {SCHEMA!r}")
    runs = doc.get("runs")
    if not isinstance(runs, list):
        raise InputError(f"{path}: 'runs' must be a list")
    for i, run in enumerate(runs):
        missing = [k for k in RUN_KEYS if not isinstance(run, dict) or k not in run]
        if missing:
            raise InputError(f"{path}: run {i} lacks {', '.join(missing)}")
        if not isinstance(run["metrics"], dict):
            raise InputError(f"{path}: run {i}: 'metrics' must be an object")
    return runs
