"""The runs of a nemesis, drawn from its seed: what each run does and what the driver does to it.

Everything here is data (no workflow is defined, no process started), so the harness, the
driver and the checker can share it without importing the workload: a process that imports
the workflow modules would start runs on its own definition instead of what workers serve.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

AGENT = "nemesis_buyer"
FLOW = "nemesis_flow"
APPROVER = "fin-ops"
APPROVER_GROUPS = ("finance",)
APPROVERS = ["group:finance"]
INTRUDER = "mallory"
OPERATOR = "operator"
#: how long a regular PO's approval stays open (expiry: the model is told it was rejected)
APPROVAL_TIMEOUT = 12.0
#: how long an express PO's approval stays open (expiry fails the run)
EXPRESS_TIMEOUT = 5.0
#: ERP posts refused for a run planned to fail: more than the write tool's attempts
ERP_REFUSALS = 4
#: the act step's attempts (the ERP refusals above exhaust them)
ACT_ATTEMPTS = 3

LLM_FAULT_KINDS = ("rate_limited", "server_error", "hang", "malformed", "huge")
FLAVORS = ("nul", "huge", "inject", "canary")


@dataclass(frozen=True)
class LLMFault:
    """A scripted LLM fault: ``kind`` served for ``turn`` (an index of the run's final script)."""

    turn: int
    kind: str


@dataclass(frozen=True)
class RunPlan:
    """One run of the nemesis and what the driver does to it.

    Attributes:
        index: position among the runs (0-based).
        tag: unique text in the run's input (its scripted route and its idempotency key).
        kind: ``agent`` (the buyer) or ``flow`` (the plain workflow).
        start_at: seconds after the start of the fault phase.
        flavors: what the world's replies carry for this run (NUL, huge strings, prompt
            injection, canary secrets).
        decision: the driver's answer to the PO approval: approve, reject or expire (none).
        express: whether the PO is the express one (short approval, expiry fails the run).
        decide_after: seconds the driver waits after seeing the approval before deciding.
        intruder: someone not named tries to approve first.
        cancel: where the driver cancels the run (act, reason, waiting, sleeping), or None.
        erp_refusals: ERP posts the world refuses for this run (the run fails; retried).
        llm_faults: scripted LLM faults.
        nap: the flow's durable sleep in seconds.
        event: the flow's event: early (sent before it parks), late, expire or open.
        fail_once: the flow's last step fails until an operator patches the state.
    """

    index: int
    tag: str
    kind: str
    start_at: float
    flavors: tuple[str, ...] = ()
    decision: str = "approve"
    express: bool = False
    decide_after: float = 0.0
    intruder: bool = False
    cancel: str | None = None
    erp_refusals: int = 0
    llm_faults: tuple[LLMFault, ...] = field(default=())
    nap: float = 0.0
    event: str = "late"
    fail_once: bool = False

    @property
    def workflow(self) -> str:
        """The workflow this run starts."""
        return AGENT if self.kind == "agent" else FLOW

    @property
    def sku(self) -> str:
        """The item the buyer orders."""
        return f"SKU-{self.index:04d}"

    @property
    def quantity(self) -> int:
        """How many units (from the index: the same on every replay)."""
        return 1 + self.index % 7

    @property
    def event_timeout(self) -> float | None:
        """The flow's event wait timeout: short when the plan lets it expire, else none."""
        return 3.0 if self.event == "expire" else None

    def expected_failure(self) -> bool:
        """Whether the run is meant to end ``failed`` (an express approval let expire)."""
        return self.kind == "agent" and self.express and self.decision == "expire"


def canary(salt: str, tag: str, where: str) -> str:
    """A secret-looking value unique to a run and a place; the checker looks for its hex."""
    return hashlib.sha256(f"{salt}/{tag}/{where}".encode()).hexdigest()[:24]


def order_number(tag: str) -> str:
    """The vendor's order number for a run's PO (deterministic, so the script can quote it)."""
    return f"SO-{tag}"


def draw_plans(
    seed: int, runs: int, duration: float, *, agent_share: float = 0.7, cancel_share: float = 0.12
) -> list[RunPlan]:
    """Draw ``runs`` run plans from ``seed``; starts spread over the first half of ``duration``.

    Args:
        seed: the nemesis's seed.
        runs: how many runs.
        duration: seconds of the fault phase.
        agent_share: the share of agent runs (the rest run the plain workflow).
        cancel_share: the share of runs the driver cancels.
    """
    rng = random.Random(f"{seed}/runs")
    spread = max(duration * 0.5, 1.0)
    return [
        _draw(rng, seed, index, rng.uniform(0, spread) if index else 0.0, agent_share, cancel_share)
        for index in range(runs)
    ]


def _draw(
    rng: random.Random, seed: int, index: int, start_at: float, share: float, cancels: float
) -> RunPlan:
    tag = f"n{seed % 100000:05d}r{index:04d}"
    flavors = tuple(f for f in FLAVORS if rng.random() < 0.25)
    if rng.random() < share:
        express = rng.random() < 0.12
        if express:
            decision = rng.choice(["approve", "approve", "expire"])
        else:
            decision = rng.choices(["approve", "reject", "expire"], [0.65, 0.2, 0.15])[0]
        llm_faults: tuple[LLMFault, ...] = ()
        if rng.random() < 0.35:
            llm_faults = (LLMFault(rng.randrange(3), rng.choice(LLM_FAULT_KINDS)),)
        return RunPlan(
            index,
            tag,
            "agent",
            start_at,
            flavors,
            decision,
            express,
            decide_after=rng.uniform(0.0, 1.0 if express else 3.0),
            intruder=rng.random() < 0.1,
            cancel=rng.choice(["act", "act", "act", "reason", "waiting"])
            if rng.random() < cancels
            else None,
            erp_refusals=ERP_REFUSALS if decision == "approve" and rng.random() < 0.06 else 0,
            llm_faults=llm_faults,
        )
    return RunPlan(
        index,
        tag,
        "flow",
        start_at,
        flavors,
        cancel=rng.choice(["sleeping", "waiting"]) if rng.random() < cancels else None,
        nap=rng.uniform(0.5, 4.0),
        event=rng.choices(["early", "late", "expire", "open"], [0.3, 0.45, 0.15, 0.1])[0],
        fail_once=rng.random() < 0.12,
    )
