"""Workflows: named graphs of steps, declared with ``@flow.step``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, overload

from pipeline.errors import ConfigurationError, WorkflowNotFound
from pipeline.retry import DEFAULT_RETRY, RetryPolicy

if TYPE_CHECKING:
    from pipeline.context import StepContext
    from pipeline.transitions import Transition

StepFn = Callable[["StepContext"], "Transition"]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,99}$")

# name -> version -> workflow: one process can serve several versions side by side while the
# runs of an old one drain.
_registry: dict[str, dict[int, Workflow]] = {}


@dataclass(frozen=True)
class StepDef:
    """One step of a workflow: its function, retry policy and Celery queue."""

    name: str
    fn: StepFn
    retry: RetryPolicy
    queue: str | None


class Workflow:
    """A named, versioned graph of steps.

    Creating a workflow registers it in this process: workers serve every workflow defined in
    the modules named by ``RAVEL_WORKFLOWS``. A run stays on the version it started on: only
    workers serving that version claim it. To change a workflow incompatibly, define the new
    one with the next ``version`` and keep the old definition loaded (in its own module) until
    its runs have drained; new runs start on the newest version.

    Args:
        name: the workflow's name; Celery tasks are named ``<name>.<step>``.
        version: bump it when a change is incompatible with runs in flight.
        queue: default Celery queue of its steps (``RAVEL_DEFAULT_QUEUE`` if None).
        retry: default retry policy of its steps.
    """

    def __init__(
        self,
        name: str,
        version: int = 1,
        *,
        queue: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        if not _NAME.match(name):
            raise ConfigurationError(
                f"workflow name {name!r} must be letters, digits, '_' or '-' (at most 100)"
            )
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ConfigurationError(f"workflow {name!r}: version must be an integer >= 1")
        self.name = name
        self.version = version
        self.queue = queue
        self.retry = retry or DEFAULT_RETRY
        self.steps: dict[str, StepDef] = {}
        self.start_step: str | None = None
        _registry.setdefault(name, {})[version] = self

    @overload
    def step(self, fn: StepFn, /) -> StepFn: ...

    @overload
    def step(
        self,
        fn: None = None,
        /,
        *,
        start: bool = False,
        retry: RetryPolicy | None = None,
        queue: str | None = None,
        name: str | None = None,
    ) -> Callable[[StepFn], StepFn]: ...

    def step(
        self,
        fn: StepFn | None = None,
        /,
        *,
        start: bool = False,
        retry: RetryPolicy | None = None,
        queue: str | None = None,
        name: str | None = None,
    ) -> StepFn | Callable[[StepFn], StepFn]:
        """Declare a step: ``@flow.step`` or ``@flow.step(start=True, retry=..., queue=...)``.

        The first step declared is the start step unless another says ``start=True``.
        """

        def register(f: StepFn) -> StepFn:
            step_name = name or f.__name__
            if not _NAME.match(step_name):
                raise ConfigurationError(f"step name {step_name!r} is not a valid name")
            self.steps[step_name] = StepDef(step_name, f, retry or self.retry, queue or self.queue)
            if start or self.start_step is None:
                self.start_step = step_name
            return f

        return register(fn) if fn is not None else register

    def queue_of(self, step: str, default: str) -> str:
        """The queue configured for ``step`` (its own, the workflow's, or ``default``)."""
        found = self.steps.get(step)
        return (found.queue if found else None) or self.queue or default

    def broker_queue(self, step: str, default: str) -> str:
        """The broker queue its wake-ups go to: the configured queue, per version."""
        return versioned_queue(self.queue_of(step, default), self.version)

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, version={self.version}, steps={list(self.steps)})"


def versioned_queue(queue: str, version: int) -> str:
    """The broker queue of a workflow version's steps: ``<queue>.v<version>``.

    Each version has its own queue and a worker consumes only the queues of the versions it
    serves, so a wake-up reaches only a worker that can run it: during a rolling deploy a
    worker serving v2 never takes (and has to leave) a v1 run's wake-up.
    """
    return f"{queue}.v{version}"


def get_workflow(name: str, version: int | None = None) -> Workflow:
    """The workflow of that name (newest version, or ``version``) defined in this process."""
    found = find_workflow(name, version)
    if found is None:
        which = f"{name!r} version {version}" if version is not None else repr(name)
        raise WorkflowNotFound(f"no workflow {which} is loaded in this process")
    return found


def find_workflow(name: str, version: int | None = None) -> Workflow | None:
    """The workflow of that name (newest version, or ``version``) in this process, or None."""
    versions = _registry.get(name)
    if not versions:
        return None
    return versions.get(version if version is not None else max(versions))


def served_versions(name: str) -> tuple[int, ...]:
    """The versions of a workflow this process serves, oldest first."""
    return tuple(sorted(_registry.get(name, {})))


def all_workflows() -> list[Workflow]:
    """Every workflow version defined in this process."""
    return [flow for versions in _registry.values() for _, flow in sorted(versions.items())]


def describe(flow: Workflow, default_queue: str) -> dict[str, Any]:
    """What a worker records about a workflow it serves."""
    if flow.start_step is None:
        raise ConfigurationError(f"workflow {flow.name!r} has no steps")
    return {
        "name": flow.name,
        "version": flow.version,
        "start_step": flow.start_step,
        "steps": {s: flow.queue_of(s, default_queue) for s in flow.steps},
    }
