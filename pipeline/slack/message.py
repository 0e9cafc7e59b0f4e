"""The Block Kit messages of an approval: the question with its buttons, and its outcome.

Everything shown comes from the run (the prompt, the proposed call written by a model, the
workflow's names), so every piece of text is escaped for Slack's mrkdwn: a prompt cannot
mention ``<!channel>`` or dress a link up as ``<https://evil|Approve>``.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pipeline.views import RunView, WaitView

APPROVE = "ravel_approve"
REJECT = "ravel_reject"
#: The ``block_id`` of the buttons, so a response can drop exactly them.
ACTIONS_BLOCK = "ravel_decision"

# Slack's limits: a section's text, a header's text, a message's text fallback.
_SECTION = 2900
_HEADER = 150
_FALLBACK = 3000

Blocks = list[dict[str, Any]]


def escape(text: str) -> str:
    """Text made inert for mrkdwn: ``&``, ``<`` and ``>`` escaped as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, _SECTION)}}


def _code(value: Any) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    # A ``` inside would close the code block early; escaping keeps the rest inert.
    return "```" + escape(_cut(text, _SECTION - 200)).replace("```", "`\u200b``") + "```"


def _when(at: datetime | None) -> str:
    if at is None:
        return "no deadline"
    # Slack shows the date in each reader's time zone; the text after | is the fallback.
    fallback = at.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _proposal(wait: WaitView) -> Blocks:
    data = wait.data
    if not data:
        return []
    if isinstance(data.get("tool"), str) and "arguments" in data:
        # An agent's tool approval: the call the model proposes, as data.
        return [
            _section(
                f"*Proposed call:* `{escape(_cut(data['tool'], 200))}` with "
                f"arguments\n{_code(data['arguments'])}"
            )
        ]
    return [_section(f"*Details:*\n{_code(data)}")]


def _question(run: RunView, wait: WaitView, asked_by: str | None, run_link: str | None) -> Blocks:
    run_text = f"<{run_link}|{run.id}>" if run_link else f"`{run.id}`"
    fields = [
        f"*Run:*\n{run_text}",
        f"*Workflow:*\n{escape(run.workflow)} (step {escape(run.step)})",
        f"*Asked by:*\n{escape(asked_by or 'unknown')}",
        f"*Deadline:*\n{_when(wait.expires_at)}",
        f"*Approvers:*\n{escape(', '.join(wait.approvers) or 'nobody')}",
    ]
    return [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _cut(f"Approval needed: {run.workflow}", _HEADER),
            },
        },
        _section(escape(wait.prompt or "(no prompt)")),
        *_proposal(wait),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": _cut(f, 1900)} for f in fields]},
    ]


def _fallback(run: RunView, wait: WaitView) -> str:
    return _cut(
        f"Approval needed for run {run.id} ({run.workflow}): {wait.prompt or ''}", _FALLBACK
    )


def approval_message(
    run: RunView, wait: WaitView, asked_by: str | None, run_link: str | None
) -> tuple[str, Blocks]:
    """The message asking for a decision: (fallback text, blocks with Approve and Reject).

    The buttons carry the wait id: a click decides exactly the wait this message shows,
    never a later wait of the same run.
    """

    def button(label: str, action: str, style: str) -> dict[str, Any]:
        return {
            "type": "button",
            "action_id": action,
            "style": style,
            "value": wait.id,
            "text": {"type": "plain_text", "text": label},
        }

    actions = {
        "type": "actions",
        "block_id": ACTIONS_BLOCK,
        "elements": [button("Approve", APPROVE, "primary"), button("Reject", REJECT, "danger")],
    }
    return _fallback(run, wait), [*_question(run, wait, asked_by, run_link), actions]


def outcome_message(original: Any, outcome: str) -> tuple[str, Blocks]:
    """The message once decided or refused: the blocks Slack sent back with the click (the
    question as posted) without the buttons, and ``outcome`` (plain text, escaped here)."""
    kept = (
        [b for b in original if isinstance(b, dict) and b.get("type") != "actions"]
        if (isinstance(original, list))
        else []
    )
    return _cut(outcome, _FALLBACK), [*kept, _section(escape(outcome))]


__all__ = ["ACTIONS_BLOCK", "APPROVE", "REJECT", "approval_message", "escape", "outcome_message"]
