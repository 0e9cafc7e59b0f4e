"""Tables of approvals made outside the API: Slack messages to post, and approval links."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, IdType, JSONType


class SlackMessage(Base):
    """The outbox of Slack approval messages: one row per wait, so one message per wait.

    The row is written after the park commits (or by a sweep that finds an open approval
    without one) and is claimed by setting ``next_attempt_at`` to the end of a short lease:
    a process that dies while posting leaves the row due again when its lease ends.
    """

    __tablename__ = "ravel_slack_messages"
    __table_args__ = (
        # What is due to post, and nothing else: the courier's query scans only these.
        Index(
            "ix_ravel_slack_messages_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    # The primary key is the uniqueness that makes a second post for one wait impossible.
    wait_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("ravel_waits.id", ondelete="CASCADE"), primary_key=True
    )
    run_id: Mapped[str] = mapped_column(IdType, ForeignKey("ravel_runs.id", ondelete="CASCADE"))
    # pending | sent | failed (gave up) | dropped (the wait closed before it was posted)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    # Where the message was posted (chat.postMessage's channel and ts), once it was.
    channel: Mapped[str | None] = mapped_column(String(200))
    ts: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class ApprovalLink(Base):
    """A single-use approval link: bound to one wait and one principal, stored hashed."""

    __tablename__ = "ravel_approval_links"
    __table_args__ = (Index("ix_ravel_approval_links_wait_id", "wait_id"),)

    # SHA-256 of the secret token: the token itself is never stored.
    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    wait_id: Mapped[str] = mapped_column(IdType, ForeignKey("ravel_waits.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(IdType, ForeignKey("ravel_runs.id", ondelete="CASCADE"))
    principal: Mapped[str] = mapped_column(String(200))
    # The groups the link's creator vouched for (for approvers naming ``group:...``).
    groups: Mapped[list[str]] = mapped_column(JSONType)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    # approved | rejected, once used
    decision: Mapped[str | None] = mapped_column(String(16))
