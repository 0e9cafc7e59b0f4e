"""Ravel's database schema: SQLAlchemy 2.x models, the only description of the tables.

The models describe the schema; they carry no behaviour. All SQL is issued by
``pipeline.store``, which uses the tables below through SQLAlchemy Core on the step's hot
path. Every table is prefixed ``ravel_`` so that Ravel can share a host application's database.
"""

from models.approvals import ApprovalLink, SlackMessage
from models.base import Base, RunStatusValues, table_of
from models.tables import (
    AuditEvent,
    Effect,
    InboundEvent,
    Message,
    ReaperRecord,
    Run,
    StepRecord,
    Wait,
    WorkerRecord,
    WorkflowRecord,
)

__all__ = [
    "ApprovalLink",
    "AuditEvent",
    "Base",
    "Effect",
    "InboundEvent",
    "Message",
    "Run",
    "RunStatusValues",
    "SlackMessage",
    "StepRecord",
    "table_of",
    "Wait",
    "ReaperRecord",
    "WorkerRecord",
    "WorkflowRecord",
]
