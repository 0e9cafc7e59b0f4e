"""One small error hierarchy. Each error's message says what was wrong and what to do."""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error Ravel raises on purpose."""


class ConfigurationError(PipelineError):
    """A setting is missing or invalid."""


class InvalidInput(PipelineError, ValueError):
    """An argument is not what Ravel accepts (not JSON, too large, wrong type)."""


class ValueTooLarge(InvalidInput):
    """A value is over its configured size limit; the message names the setting to raise."""


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


class LLMError(PipelineError):
    """An LLM API call failed; ``retryable`` and ``retry_after`` tell the step's retry policy.

    Attributes:
        retryable: whether another attempt of the step may succeed (408, 409, 429, 5xx,
            timeouts, connection errors); False fails the run with the API's message.
        retry_after: seconds the server asked to wait (``Retry-After``), or None.
        status: the HTTP status, or None when no response arrived.
        request_id: the API's ``x-request-id``, for the provider's support.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status
        self.request_id = request_id


class BudgetExceeded(PipelineError):
    """A paid call or tool call was not made because it would exceed the run's budget."""

    retryable = False


class ToolArgumentsError(PipelineError, ValueError):
    """A tool call's arguments do not match the tool's signature; the tool was not run."""

    retryable = False


class AgentError(PipelineError):
    """An agent cannot go on (bad input, unusable model reply); retrying will not help."""

    retryable = False


class DatabaseNotMigrated(ConfigurationError):
    """Ravel's tables are missing or older than this version: run ``ravel db upgrade``."""


class StoreUnavailable(PipelineError):
    """The database cannot be reached; nothing was changed."""
