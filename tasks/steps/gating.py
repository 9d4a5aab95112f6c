"""The gate step: decide from the test metrics, `gate:` and the champion comparison; write `gate.json`."""

from __future__ import annotations

from tasks.comparison.champion import read_comparison
from tasks.core.config import Params
from tasks.core.files import read_json
from tasks.core.layout import RunLayout
from tasks.gating.decision import GateDecision, decide


def run_step(params: Params, layout: RunLayout) -> GateDecision:
    """Read the test metrics, decide, and write `gate.json` (a DVC metric)."""
    decision = decide(read_json(layout.eval_metrics), params.gate, read_comparison(layout.comparison_json))
    layout.gate_json.write_text(decision.to_json(), encoding="utf-8")
    return decision


if __name__ == "__main__":
    from tasks.steps.stage import stage_main

    stage_main(run_step)
