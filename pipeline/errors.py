"""One small error hierarchy. Each error's message says what was wrong and what to do."""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error Ravel raises on purpose."""


class ConfigurationError(PipelineError):
    """A setting is missing or invalid."""


class InvalidInput(PipelineError, ValueError):
    """An argument is not what Ravel accepts (not JSON, too large, wrong type)."""


class WorkflowNotFound(PipelineError, LookupError):
    """No worker has registered a workflow of that name."""


class RunNotFound(PipelineError, LookupError):
    """No run has that id (or the id is not a run id at all)."""


class InvalidTransition(PipelineError):
    """The run's status does not allow that operation."""


class NotWaiting(InvalidTransition):
    """The run has no open wait to decide."""


class WaitNotFound(PipelineError, LookupError):
    """The wait named by ``wait_id`` is not this run's open wait."""


class WaitAlreadyDecided(PipelineError):
    """The wait was already decided differently; the first decision stands."""


class WaitExpired(WaitAlreadyDecided):
    """The wait's deadline passed before the decision arrived."""


class NotAuthorized(PipelineError, PermissionError):
    """The actor may not make this decision."""


class InvalidStepResult(PipelineError, TypeError):
    """A step returned something that is not a transition, or named an unknown step."""


class StepTimeout(PipelineError):
    """A step ran past its time limit."""
