"""The CPU demo: the whole RM-R1 pipeline, small, on the embedded SmolLM2-135M-Instruct, judged and reported
like any run.

    from rmr1.demo import demo_config, run_demo
    result = run_demo(demo_config(quick=True, out_dir="demo-output/quick"))
    result.stages["sft"].accuracy, result.stages["sft"].interval

- ``task``: the generated verifiable preference task (two-digit additions against close wrong answers, a held-out
  split of number pairs never trained on), the demo's short Chain-of-Rubrics template and the scripted teacher,
  which implements the backend protocol so it goes through the same ``rmr1.train.distill`` code an LLM teacher does.
- ``config``: the settings (``DemoConfig``, ``demo_config``) and results (``DemoResult``, ``StageResult``).
- ``training``: SFT, the SFT judge screening GRPO's pool, and GRPO within the demo's time budget.
- ``pipeline``: the stages (distill -> base eval -> SFT -> eval -> GRPO -> eval), each timed. Every held-out
  evaluation is a run directory ``OUT/runs/{base,sft,grpo}`` written by ``rmr1.evaluation.evaluate`` (the
  ``preference`` benchmark, both orders, the ``auto`` backend on the stage's checkpoint).
- ``report``: ``OUT/report.html``, linking each stage's own report and adding the stage table, training curves
  and traces before and after.

``OUT/summary.json``: ``{"stages": {"base"|"sft"|"grpo": {"accuracy", "low", "high", "seconds",
"train_seconds", "eval_seconds", "position_consistency", "parse_failure_rate", ...}},
"comparisons": {"sft_vs_base"|"grpo_vs_sft": {"diff", "low", "high", "p_value", "pairs",
"separate_intervals"}}, "seconds": {step: s}, ...}``; accuracies are fractions, ``low``/``high`` the seeded
bootstrap 95% interval, ``seconds`` the stage's training plus its evaluation. A comparison is the paired
difference of a stage against the one before it on the same held-out pairs (``rmr1 compare``), and whether the
two stages' own intervals are apart.
"""

from rmr1.demo.config import (
    LABELS,
    STAGES,
    DemoConfig,
    DemoResult,
    StageDifference,
    StageResult,
    demo_config,
)
from rmr1.demo.pipeline import evaluate_stage, format_difference, format_stage, run_demo, summary
from rmr1.demo.task import DEMO_TEMPLATE, ArithmeticTeacher, make_task

__all__ = [
    "DEMO_TEMPLATE",
    "LABELS",
    "STAGES",
    "ArithmeticTeacher",
    "DemoConfig",
    "DemoResult",
    "StageDifference",
    "StageResult",
    "demo_config",
    "evaluate_stage",
    "format_difference",
    "format_stage",
    "make_task",
    "run_demo",
    "summary",
]
