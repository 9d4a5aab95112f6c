"""The gate: a pure decision from test metrics and thresholds, with its reasons."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from tasks.comparison.champion import ChampionComparison, judge
from tasks.core.config import GateConfig
from tasks.core.errors import RefineryError


@dataclass(frozen=True)
class GateDecision:
    """Whether a model may be registered, and why."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, dict[str, float | bool]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "passed" if self.passed else "failed"

    def to_json(self) -> str:
        return json.dumps({"passed": self.passed, **asdict(self)}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> GateDecision:
        raw = json.loads(text)
        return cls(passed=bool(raw["passed"]), reasons=list(raw["reasons"]), checks=dict(raw["checks"]))


class GateFailed(RefineryError):
    """Raised when the gate refuses a model and `gate.on_fail` is `fail`."""


def decide(
    metrics: dict[str, float], cfg: GateConfig, comparison: ChampionComparison | None = None
) -> GateDecision:
    """Compare every thresholded metric with its minimum (and `maximums` with their maximum);
    a missing metric fails the gate. With a `comparison` against the champion, the challenger
    must also be shown better (see `tasks.comparison.champion.judge`)."""
    reasons: list[str] = []
    checks: dict[str, dict[str, float | bool]] = {}
    passed = True
    bounds = [(name, bound, True) for name, bound in sorted(cfg.thresholds.items())]
    bounds += [(name, bound, False) for name, bound in sorted(cfg.maximums.items())]
    for name, bound, at_least in bounds:
        value = metrics.get(name)
        if value is None:
            passed = False
            reasons.append(f"{name}: not computed (threshold {bound:.4f})")
            continue
        ok = value >= bound if at_least else value <= bound
        passed = passed and ok
        checks[name] = {"value": value, "threshold": bound, "passed": ok}
        relation = (">=" if ok else "<") if at_least else ("<=" if ok else ">")
        reasons.append(f"{name} {value:.4f} {relation} {bound:.4f}")
    if not cfg.thresholds and not cfg.maximums:
        reasons.append("no thresholds configured: every model passes")
    if comparison is not None:
        better, champion_reasons, champion_checks = judge(comparison)
        passed, reasons, checks = passed and better, reasons + champion_reasons, checks | champion_checks
    return GateDecision(passed=passed, reasons=reasons, checks=checks)
