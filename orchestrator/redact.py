"""Keep credentials out of what a sweep saves, uploads and prints.

Two kinds of secret reach a sweep: a URI with ``user:password@`` (``tracking.uri``, a data
URL) and environment values a command template renders (``{env.HF_TOKEN}``). Files that are
read back later (``sweep.yaml``, the journal's ``meta.json``, ``summary.json``) get the URI
*without* its user info, so it still works with credentials from the environment
(``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``); text for people (logs, the
summary table) gets ``***`` in its place, so a reader sees that something was removed.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"

# scheme://user[:password]@  (user info ends at the first / ? # or whitespace)
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s@]+@")


def strip_userinfo(uri: str) -> str:
    """``uri`` without ``user:password@``: ``http://u:p@h:5000/x`` -> ``http://h:5000/x``."""
    return _USERINFO.sub(r"\g<scheme>", uri)


def mask_userinfo(text: str) -> str:
    """Every ``scheme://user:password@`` in ``text`` shown as ``scheme://***@``."""
    return _USERINFO.sub(rf"\g<scheme>{MASK}@", text)


def strip_credentials(value: Any) -> Any:
    """A copy of a config dump (dicts, lists, strings) with user info removed from every URI."""
    if isinstance(value, str):
        return strip_userinfo(value)
    if isinstance(value, dict):
        return {k: strip_credentials(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_credentials(v) for v in value]
    return value


def mask_env_values(values: dict[str, Any]) -> dict[str, Any]:
    """Template values with each ``env.X`` replaced by its own placeholder ``{env.X}``, so a
    command rendered from them shows where an environment value went but not the value."""
    return {k: "{" + k + "}" if k.startswith("env.") else v for k, v in values.items()}
