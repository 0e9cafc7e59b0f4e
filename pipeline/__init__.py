"""Ravel: durable Reason-Act-Verify agents on Celery, Redis and PostgreSQL.

Apps and tests use only the names below; everything else is internal.
"""

from pipeline.agent import Agent, Approval, Budget, tool
from pipeline.api import (
    approve,
    cancel_run,
    fork_run,
    get_run,
    list_runs,
    reject,
    retry_run,
    run_history,
    run_steps,
    send_event,
    start_run,
    verify_audit,
)
from pipeline.context import StepContext
from pipeline.errors import (
    BudgetExceeded,
    DatabaseNotMigrated,
    InvalidInput,
    InvalidStepResult,
    InvalidTransition,
    NotAuthorized,
    NotWaiting,
    PipelineError,
    RunNotFound,
    StoreUnavailable,
    ValueTooLarge,
    WaitAlreadyDecided,
    WaitExpired,
    WorkflowNotFound,
)
from pipeline.notify import on_park
from pipeline.retry import RetryPolicy
from pipeline.status import RunStatus
from pipeline.transitions import Done, Fail, Next, Sleep, WaitForApproval, WaitForEvent
from pipeline.views import HistoryEvent, RunView, WaitResult, WaitView
from pipeline.workflow import Workflow

__all__ = [
    # workflows
    "Workflow",
    "StepContext",
    "RetryPolicy",
    # transitions
    "Next",
    "Done",
    "Fail",
    "Sleep",
    "WaitForApproval",
    "WaitForEvent",
    # agents
    "Agent",
    "tool",
    "Approval",
    "Budget",
    # runs
    "start_run",
    "get_run",
    "list_runs",
    "approve",
    "reject",
    "send_event",
    "retry_run",
    "cancel_run",
    "fork_run",
    "run_history",
    "run_steps",
    "verify_audit",
    "on_park",
    # views
    "RunStatus",
    "RunView",
    "WaitView",
    "WaitResult",
    "HistoryEvent",
    # errors
    "PipelineError",
    "RunNotFound",
    "WorkflowNotFound",
    "InvalidInput",
    "InvalidTransition",
    "InvalidStepResult",
    "NotWaiting",
    "NotAuthorized",
    "WaitAlreadyDecided",
    "WaitExpired",
    "DatabaseNotMigrated",
    "StoreUnavailable",
    "BudgetExceeded",
    "ValueTooLarge",
]
