"""Spec validation errors as one message: every problem with its key path, gates named."""

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("params",) or str(part).startswith("function-"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _named_gates(text: str, data: Any) -> str:
    """`gates[7].x` -> `gates[7].x (gate min_roc_auc)`: a position alone does not say which."""
    gates = data.get("gates") if isinstance(data, dict) else None
    if not isinstance(gates, list):
        return text

    def name(match: re.Match) -> str:
        index = int(match.group(1))
        entry = gates[index] if index < len(gates) else None
        label = entry.get("id") or entry.get("name") if isinstance(entry, dict) else None
        return f"{match.group(0)} (gate {label})" if isinstance(label, str) else match.group(0)

    return re.sub(r"gates\[(\d+)\][\w.\[\]]*", name, text)


def format_validation_error(path: Path, error: ValidationError, data: Any = None) -> str:
    """One message listing every problem of a spec with its key path (gates named)."""
    lines = [f"{path} is not a valid release spec ({error.error_count()} problem(s)):"]
    for item in error.errors():
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key: remove it or check its spelling (see docs/spec.md)"
        elif item["type"] == "missing":
            message = "required key is missing"
        lines.append(f"  - {_location(item['loc'])}: {message}")
    return _named_gates("\n".join(lines), data)
