"""The compiler: a pure function from a workflow to the plan the engine executes, and step policy.

``compiler`` builds the :class:`Plan` (per step: needs, dependents, trigger rule, resolved policy);
``policy`` layers settings, workflow defaults and step fields, and holds retry backoff and time limits.
"""

from orchestrator.plan.compiler import HookPlan, Plan, StepPlan, compile_workflow
from orchestrator.plan.policy import ResolvedPolicy, RetryPolicy, base_policy

__all__ = ["HookPlan", "Plan", "ResolvedPolicy", "RetryPolicy", "StepPlan", "base_policy", "compile_workflow"]
