"""The gate report: why a model was (or was not) registered and promoted, as JSON and markdown.

Point estimates, the bootstrap interval, McNemar's p-values, per-class (or per-slice) recall
deltas, both models' data and code versions, and the decision with its reasons. Pure functions:
`tasks.registry.release` writes the files and attaches them to the MLflow run and registered version.
"""

from __future__ import annotations

import json
from typing import Any

from tasks.comparison.champion import ChampionComparison, overlap_verdict, question
from tasks.gating.decision import GateDecision
from tasks.lineage.record import LINEAGE_ROWS


def build_report(
    model_name: str,
    metrics: dict[str, float],
    decision: GateDecision,
    comparison: ChampionComparison | None,
    challenger: dict[str, Any],
    promotion: dict[str, str],
) -> dict[str, Any]:
    """The report as a JSON-ready mapping; `challenger`: version, mlflow_run_id and lineage tags."""
    champion = None
    if comparison is not None:
        boot = comparison.bootstrap
        champion = {
            "version": comparison.champion_version,
            "lineage": comparison.champion_tags,
            "metrics": {boot.metric: boot.champion},
        }
    return {
        "model_name": model_name,
        "decision": {"passed": decision.passed, "label": decision.label, "reasons": decision.reasons},
        "checks": decision.checks,
        "challenger": {**challenger, "metrics": metrics},
        "champion": champion,
        "comparison": comparison.to_dict() if comparison is not None else None,
        "promotion": promotion,
    }


def report_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True)


def _rows(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]


def _comparison_md(comparison: dict[str, Any]) -> list[str]:
    boot, test = comparison["bootstrap"], comparison["mcnemar"]
    level = f"{boot['confidence']:.0%}"
    record = ChampionComparison.from_dict(comparison)
    lines = [f"## Champion comparison (version {comparison['champion_version']})", ""]
    lines += [f"**{question(record).capitalize()}**", ""]
    lines += _rows(
        ["metric", "champion", "challenger", "delta", f"{level} CI", "lower bound must exceed"],
        [
            [
                boot["metric"],
                f"{boot['champion']:.4f}",
                f"{boot['challenger']:.4f}",
                f"{boot['delta']:+.4f}",
                f"[{boot['low']:+.4f}, {boot['high']:+.4f}]",
                f"{record.bound:+.4f}",
            ]
        ],
    )
    lines.append(f"\nPaired bootstrap: {boot['resamples']} resamples, seed {boot['seed']}.")
    if record.overlap_note:
        lines.append(f"\n{record.overlap_note.capitalize()}{overlap_verdict(record)}.\n")
    if test:
        lines.append(
            f"McNemar: challenger-only right {test['challenger_only']}, champion-only right "
            f"{test['champion_only']}; p = {test['p_exact']:.4g} (exact), {test['p_mid']:.4g} (mid-p).\n"
        )
    group_by, scored = comparison["group_by"], comparison.get("group_metric", "recall")
    if not comparison["groups"]:
        return [*lines, "No guard rails: set `gate.champion.slice_column` to check each slice.", ""]
    title = f"{scored.replace('_', ' ').capitalize()} per {group_by}"
    test = comparison.get("guard_rail_test") or "one-sided paired test"
    lines.append(
        f"### {title} (guard rail: trips when shown worse, {test}, and the drop > "
        f"{comparison['max_class_drop']:.4f})\n"
    )
    lines += _rows(
        [group_by, "support", "champion", "challenger", "drop", "p (one-sided)", "p adjusted", "tripped"],
        [
            [
                g["name"],
                str(g["support"]),
                f"{g['champion']:.4f}",
                f"{g['challenger']:.4f}",
                f"{g['drop']:+.4f}",
                f"{g['p_value']:.4g}",
                "-" if g["p_adjusted"] is None else f"{g['p_adjusted']:.4g}",
                "**yes**" if g["tripped"] else "no",
            ]
            for g in comparison["groups"]
        ],
    )
    return [*lines, ""]


def report_markdown(report: dict[str, Any]) -> str:
    """The report for people: decision, metrics, comparison, lineage of both models, promotion."""
    decision, challenger, champion = report["decision"], report["challenger"], report["champion"]
    version = challenger.get("version")
    title = (
        f"{report['model_name']} version {version}" if version else f"{report['model_name']} (not registered)"
    )
    lines = [f"# Gate report: {title}", "", f"## Decision: **{decision['label'].upper()}**", ""]
    lines += [f"- {reason}" for reason in decision["reasons"]] + [""]
    lines += ["## Test metrics (challenger)", ""]
    lines += _rows(
        ["metric", "value"],
        [
            [k, f"{v:.4f}" if isinstance(v, float) else str(v)]
            for k, v in sorted(challenger["metrics"].items())
        ],
    )
    lines.append("")
    if report["comparison"]:
        lines += _comparison_md(report["comparison"])
    else:
        lines += ["## Champion comparison", "", "No champion: the thresholds alone decided.", ""]
    theirs = champion["lineage"] if champion else {}
    lines += ["## Lineage", ""]
    lines += _rows(
        ["", "challenger", f"champion (v{champion['version']})" if champion else "champion"],
        [[key, str(challenger["lineage"].get(key, "-")), str(theirs.get(key, "-"))] for key in LINEAGE_ROWS],
    )
    promotion = report["promotion"]
    lines += ["", "## Promotion", "", f"- policy: `{promotion['policy']}`", f"- {promotion['outcome']}", ""]
    return "\n".join(lines)
