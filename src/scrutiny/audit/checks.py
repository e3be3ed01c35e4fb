"""``--fail-on``: gate a model in CI on the numbers of an audit.

Grammar: ``CHECK[,CHECK...]`` where ``CHECK`` is a flag name (``sanity``, ``failed``) or
``NAME OP NUMBER`` with ``OP`` one of ``< <= > >=``; the condition describes a *failure*:
``faithfulness<0.6`` fails when the lowest mean faithfulness of any method is below 0.6.
A check whose number the audit did not compute (its section was skipped or failed) fails too,
so a gate never passes silently.
"""

from __future__ import annotations

import operator
import re
from typing import Any, NamedTuple

from ..exceptions import InvalidParameterError

__all__ = ["Check", "CheckOutcome", "parse_checks", "evaluate_checks", "CHECKS", "GRAMMAR"]

GRAMMAR = "CHECK[,CHECK...] with CHECK = FLAG or NAME<NUMBER, NAME<=NUMBER, NAME>NUMBER, NAME>=NUMBER"
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _section(trail: dict, name: str) -> dict | None:
    sec = next((s for s in trail["sections"] if s["name"] == name), None)
    return sec["numbers"] if sec is not None and sec["status"] == "ok" else None


def _faithfulness(trail: dict) -> float | None:
    n = _section(trail, "local")
    vals = [m["faithfulness_mean"] for m in (n or {}).get("methods", {}).values() if m["faithfulness_mean"] is not None]
    return min(vals) if vals else None


def _sanity_failed(trail: dict) -> bool | None:
    n = _section(trail, "local")
    verdicts = [m["sanity"] for m in (n or {}).get("methods", {}).values() if m["sanity"] is not None]
    return (not all(verdicts)) if verdicts else None


def _rhat(trail: dict) -> float | None:
    n = _section(trail, "dmm_men")
    vals = [c["max_rhat"] for c in (n or {}).get("classes", {}).values() if c["max_rhat"] is not None]
    return max(vals) if vals else None


def _get(section: str, key: str) -> Any:
    return lambda trail: (_section(trail, section) or {}).get(key)


# name -> (description, value function); flags return True when the check fails
CHECKS: dict[str, tuple[str, Any]] = {
    "sanity": ("flag: an explanation method failed the parameter-randomisation sanity check", _sanity_failed),
    "failed": ("flag: a section of the audit failed with an error",
               lambda t: any(s["status"] == "failed" for s in t["sections"])),
    "faithfulness": ("lowest mean faithfulness correlation over the local methods", _faithfulness),
    "accuracy": ("accuracy on --data", _get("performance", "accuracy")),
    "loo_gap": ("NNK leave-one-out error minus training error", _get("generalisation", "loo_gap")),
    "nnk_loo_error": ("NNK leave-one-out error on the training data", _get("generalisation", "nnk_loo_error")),
    "out_of_support": ("number of --data rows out of the training support (p < 0.05)",
                       _get("generalisation", "n_out_of_support")),
    "rhat": ("largest DMM-MEN R-hat", _rhat),
}
_FLAGS = ("sanity", "failed")


class Check(NamedTuple):
    name: str
    op: str | None
    threshold: float | None
    text: str


class CheckOutcome(NamedTuple):
    check: Check
    value: Any
    failed: bool
    message: str


def _usage(detail: str) -> InvalidParameterError:
    known = "; ".join(f"{k} ({v[0]})" for k, v in CHECKS.items())
    return InvalidParameterError(f"--fail-on: {detail}. Grammar: {GRAMMAR}. Known checks: {known}.")


def parse_checks(spec: str) -> list[Check]:
    """Parse ``"sanity,faithfulness<0.6"``; bad syntax raises InvalidParameterError with the grammar."""
    checks = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            raise _usage(f"empty check in {spec!r}")
        m = re.fullmatch(r"([a-z_]+)\s*(?:(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))?", item)
        if m is None:
            raise _usage(f"cannot parse {item!r}")
        name, op, num = m.groups()
        if name not in CHECKS:
            raise _usage(f"unknown check {name!r}")
        if (op is None) != (name in _FLAGS):
            raise _usage(f"{name!r} is a flag and takes no comparison" if name in _FLAGS
                         else f"{name!r} needs a comparison such as {name}<0.5")
        checks.append(Check(name, op, float(num) if num is not None else None, item))
    return checks


def evaluate_checks(checks: list[Check], trail: dict) -> list[CheckOutcome]:
    """Evaluate parsed checks against an audit trail."""
    outcomes = []
    for c in checks:
        value = CHECKS[c.name][1](trail)
        if value is None:
            outcomes.append(CheckOutcome(c, None, True, f"{c.text}: FAILED (not computed: its section did not run)"))
        elif c.op is None:
            outcomes.append(CheckOutcome(c, bool(value), bool(value), f"{c.text}: {'FAILED' if value else 'passed'}"))
        else:
            bad = _OPS[c.op](float(value), c.threshold)
            outcomes.append(CheckOutcome(c, value, bad, f"{c.text}: {'FAILED' if bad else 'passed'} "
                                                        f"({c.name} = {float(value):.4g})"))
    return outcomes
