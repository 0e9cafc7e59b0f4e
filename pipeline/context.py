"""``StepContext``: what a step function sees and the journal it calls effects through."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from pipeline import faults, metrics, telemetry
from pipeline.jsonutil import to_json_value
from pipeline.store import Database, journal
from pipeline.store.journal import JournalEntry
from pipeline.views import WaitResult

T = TypeVar("T")


class AttemptFenced(BaseException):
    """This attempt no longer holds its run (cancelled, or its lease was taken over).

    Raised by a journaled call instead of making the call. It derives from ``BaseException``
    so a step's ``except Exception`` cannot swallow it; the engine ends the attempt quietly:
    nothing is committed or published.
    """


_KEY_NAMESPACE = uuid.UUID("6f1c9a52-0b8e-4d0e-9a57-2f0d3c4b5a61")


class StepContext:
    """The run as one step attempt sees it.

    Attributes:
        run_id: the run's id.
        workflow: the workflow's name.
        step: this step's name.
        seq: the step's sequence number in the run (stable across its attempts).
        attempt: this attempt's number for the step, from 1 (counted since the last
            operator retry).
        state: the run's JSON state; changes are saved with the step's commit, and dropped
            if the attempt fails.
        wait_result: how the wait before this step ended, or None.
    """

    def __init__(
        self,
        db: Database,
        *,
        run_id: str,
        workflow: str,
        step: str,
        seq: int,
        attempt: int,
        state: dict[str, Any],
        wait_result: WaitResult | None,
        message_count: int = 0,
        fencing: int = 0,
        owner: str = "",
    ) -> None:
        self._db = db
        self.run_id = run_id
        self.workflow = workflow
        self.step = step
        self.seq = seq
        self.attempt = attempt
        self.state = state
        self.wait_result = wait_result
        self._journal: dict[str, JournalEntry] | None = None
        self._messages: list[dict[str, Any]] | None = None
        self._message_count = message_count
        self.new_messages: list[dict[str, Any]] = []
        self.audit_events: list[tuple[str, dict[str, Any]]] = []
        self._fencing, self._owner = fencing, owner  # the claim, fencing journal writes
        self._lease_lost: Callable[[], bool] = lambda: False
        #: set when a journaled call found the run no longer held by this attempt
        self.fenced_out = False

    def watch_lease(self, lost: Callable[[], bool]) -> None:
        """Let :attr:`lease_lost` ask the engine's lease keeper (set by the engine)."""
        self._lease_lost = lost

    @property
    def lease_lost(self) -> bool:
        """Whether this attempt is known to have lost the run (cancelled, or taken over).

        The lease keeper notices within a third of the lease; a step running a long loop of
        work that is not journaled can check it and stop early. Journaled calls check it
        themselves, exactly, in their intent write.
        """
        return self.fenced_out or self._lease_lost()

    # -- effects -----------------------------------------------------------------------

    def idempotency_key(self, name: str) -> str:
        """A key stable for (run, step seq, ``name``): hand it to the remote system."""
        return str(uuid.uuid5(_KEY_NAMESPACE, f"{self.run_id}/{self.seq}/{name}"))

    def journal(self) -> dict[str, JournalEntry]:
        """This step's journal (all attempts), loaded on first use."""
        if self._journal is None:
            self._journal = journal.load(self._db, self.run_id, self.seq)
        return self._journal

    def effect(self, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)`` once for this step, journaling its result.

        A result already journaled (by an earlier attempt) is returned without calling
        ``fn``. If ``fn`` raises, nothing is recorded and the exception fails the attempt.
        The returned value is the JSON form of ``fn``'s result with secret-named keys
        redacted, as journaled: the same on every attempt.
        """
        return self.journaled(name, "effect", lambda: fn(*args, **kwargs))

    def journaled(
        self,
        name: str,
        kind: str,
        call: Callable[[], Any],
        usage: Callable[[Any], tuple[int, float, str | None]] | None = None,
        key: str | None = None,
    ) -> Any:
        """Run ``call`` under the journal entry ``name`` (the engine of :meth:`effect`).

        Args:
            name: the entry's name, unique within the step.
            kind: ``effect``, ``llm`` or ``tool``.
            call: the call to make when no result is journaled.
            usage: maps the JSON result to (tokens, cost in USD, model), for paid calls.
            key: the idempotency key ``call`` sends, to journal with it, when it is not this
                step's :meth:`idempotency_key` (a retried call of an earlier step keeps the
                key its first call carried).
        """
        entry = self.journal().get(name)
        if entry is not None and entry.done:
            return entry.result
        key = key or self.idempotency_key(name)
        # Fenced: written only while this attempt holds the run, and returns the entry as it
        # is now, so a cancelled run or a zombie whose journal is stale starts no call.
        now = journal.begin_call(
            self._db, self.run_id, self.seq, name, kind, key, self._fencing, self._owner
        )
        if now is None:
            self.fenced_out = True
            raise AttemptFenced(
                f"run {self.run_id} was cancelled or taken over by another worker; "
                f"{kind} {name!r} was not called"
            )
        if now.done:
            self.journal()[name] = now
            return now.result
        faults.fault("after_effect_intent", self.step)
        value = to_json_value(
            telemetry.traced_call(self, kind, name, call),
            what=f"the result of {kind} {name!r}",
            redact_secrets=True,
        )
        faults.fault("after_effect_call_before_record", self.step)
        tokens, cost, model = usage(value) if usage else (0, 0.0, None)
        if usage is not None:  # a paid call was made (and billed), whoever records it first
            metrics.llm_usage(self.workflow, model, tokens, cost)
        if not journal.record_result(
            self._db,
            self.run_id,
            self.seq,
            name,
            value,
            tokens=tokens,
            cost_usd=cost,
            model=model,
        ):
            # Another attempt (whose lease we outlived) recorded first: its result stands.
            self._journal = None
            winner = self.journal().get(name)
            if winner is not None and winner.done:
                return winner.result
        self.journal()[name] = JournalEntry(
            name,
            kind,
            "done",
            key,
            (entry.calls + 1) if entry else 1,
            value,
            tokens,
            cost,
            model,
            None,
        )
        faults.fault("after_effect_call_before_commit", self.step)
        return value

    def audit(self, kind: str, data: dict[str, Any]) -> None:
        """Add an event to the run's audit log, written with this attempt's commit.

        For what the audit should show about a step beyond its transition (the tool calls an
        agent made and why). Secrets are redacted; the data must be JSON.
        """
        self.audit_events.append(
            (kind, to_json_value(data, what=f"audit {kind!r}", redact_secrets=True))
        )

    # -- conversation ------------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The run's conversation so far (loaded on first use), including this step's."""
        if self._messages is None:
            self._messages = (
                journal.load_messages(self._db, self.run_id, self._message_count)
                if self._message_count
                else []
            )
            self._messages.extend(self.new_messages)
        return self._messages

    def add_message(self, message: dict[str, Any]) -> None:
        """Append a message; it is stored with the step's commit (append-only)."""
        value = to_json_value(message, what="a conversation message")
        self.new_messages.append(value)
        if self._messages is not None:
            self._messages.append(value)
