"""The scripted model of each agent run: one route of the scripted LLM server per run.

A route matches the run's tag in its first user message, so every run has its own turns, and
the server counts calls per run (the ``X-Ravel-Run-Id`` header) and per turn. LLM faults are
part of the script: a 429 with Retry-After, a 500, a hang past the client's timeout and a huge
reply strike a turn once; a malformed tool call is served once, then the model repairs it on
the next turn (the repair turn is a turn of its own, so the script repeats the call there).
"""

from __future__ import annotations

from typing import Any

from pipeline.testing.nemesis.plan import RunPlan, canary, order_number

#: bytes of a huge reply
HUGE_REPLY = 300_000


def user_message(plan: RunPlan) -> str:
    """The run's request; its tag routes the scripted model."""
    return (
        f"[{plan.tag}] Order {plan.quantity} x {plan.sku} for the lab. Check stock and "
        "price first; the PO needs finance's approval."
    )


def _call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def base_turns(plan: RunPlan, salt: str) -> list[dict[str, Any]]:
    """What the model answers, turn by turn, when nothing goes wrong."""
    memo = f"auth sk-{canary(salt, plan.tag, 'arg')}" if "canary" in plan.flavors else ""
    submit = "submit_express_po" if plan.express else "submit_po"
    turns: list[dict[str, Any]] = [
        {
            "content": "Checking stock and price together.",
            "tool_calls": [
                _call(
                    "check_inventory",
                    sku=plan.sku,
                    ref=plan.tag,
                    flavor=",".join(plan.flavors),
                    memo=memo,
                ),
                _call("get_price", sku=plan.sku, ref=plan.tag, quantity=plan.quantity),
            ],
        },
        {
            "content": "Submitting the PO; finance must approve it.",
            "tool_calls": [
                _call(submit, ref=plan.tag, sku=plan.sku, quantity=plan.quantity, unit_price=12.5)
            ],
        },
    ]
    if plan.decision == "approve":
        turns.append(
            {
                "content": "Recording the vendor's order in the ERP.",
                "tool_calls": [
                    _call("record_order", ref=plan.tag, order_number=order_number(plan.tag))
                ],
            }
        )
        turns.append(
            {
                "content": f"DONE: ordered {plan.quantity} x {plan.sku}, vendor order "
                f"{order_number(plan.tag)} recorded."
            }
        )
    else:
        turns.append({"content": f"DONE: {plan.sku} was not ordered (the PO was not approved)."})
    return turns


def _fault(kind: str, hang: float) -> tuple[dict[str, Any], int]:
    """The reply's fault for ``kind`` and how many times it strikes."""
    if kind == "rate_limited":
        return {"status": 429, "retry_after": 1, "message": "slow down"}, 1
    if kind == "server_error":
        return {"status": 500, "message": "upstream overloaded"}, 1
    if kind == "hang":
        return {"hang": hang}, 1
    return {"huge": HUGE_REPLY}, 1


def turns_for(plan: RunPlan, salt: str, hang: float) -> list[dict[str, Any]]:
    """The run's script: the base turns with its LLM faults applied."""
    turns = base_turns(plan, salt)
    for fault in plan.llm_faults:
        if fault.kind == "malformed":
            calling = [i for i, t in enumerate(turns) if t.get("tool_calls")]
            at = calling[fault.turn % len(calling)]
            broken = {**turns[at], "fault": {"malformed_tool_json": True}}
            turns.insert(at, broken)  # the repair turn after it asks again, well-formed
            continue
        at = len(turns) - 1 if fault.kind == "huge" else fault.turn % len(turns)
        spec, times = _fault(fault.kind, hang)
        turns[at] = {**turns[at], "fault": spec, "fault_times": times}
    return turns


def fault_turns(plan: RunPlan, salt: str, hang: float) -> dict[int, str]:
    """The turns of the final script that carry a fault, with its kind."""
    found: dict[int, str] = {}
    for index, turn in enumerate(turns_for(plan, salt, hang)):
        spec = turn.get("fault")
        if spec is None:
            continue
        if spec.get("malformed_tool_json"):
            found[index] = "malformed"
        elif spec.get("status") == 429:
            found[index] = "rate_limited"
        elif spec.get("status") == 500:
            found[index] = "server_error"
        elif spec.get("hang"):
            found[index] = "hang"
        else:
            found[index] = "huge"
    return found


def build_script(plans: list[RunPlan], salt: str, hang: float) -> dict[str, Any]:
    """The scripted server's script: one route per agent run."""
    routes = [
        {"match": f"[{p.tag}]", "turns": turns_for(p, salt, hang)}
        for p in plans
        if p.kind == "agent"
    ]
    return {"turns": [{"content": "unscripted request"}], "routes": routes}
