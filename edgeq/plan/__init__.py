"""Stage 11, the quantization planner: which runtime, which mode, which calibration and
transforms, from measured evidence (docs/planner.md).

`rules.plan` is the quick door `edgeq deploy --quant` uses; `search.run_plan` is `edgeq plan`,
which builds every candidate (`evaluate`, in worker processes, cached by `session`), measures
the best on the board through the device stage, and selects.
"""

from edgeq.plan.candidates import (
    DEFAULT_MAX_ACCURACY_DROP_PP,
    DEFAULT_MIN_SQNR_DB,
    OBJECTIVES,
    Candidate,
    PlanDoesNotFit,
    PlanRequest,
    PlanResult,
    budget_profile,
)
from edgeq.plan.rules import Plan, plan
from edgeq.plan.search import run_plan, select
from edgeq.plan.table import format_plan_table

__all__ = ["Candidate", "DEFAULT_MAX_ACCURACY_DROP_PP", "DEFAULT_MIN_SQNR_DB", "OBJECTIVES", "Plan", "PlanDoesNotFit",
           "PlanRequest", "PlanResult", "budget_profile", "format_plan_table", "plan", "run_plan", "select"]
