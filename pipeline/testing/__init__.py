"""What tests, the demo and the benchmarks use, kept out of the engine's package.

- the scripted OpenAI-compatible server (:class:`ScriptedLLMServer`, ``python -m
  pipeline.testing serve``), which users can point their own agents' tests at;
- :mod:`pipeline.testing.cluster`: real worker and beat processes as children;
- :mod:`pipeline.testing.servers`: private Redis, PostgreSQL and RabbitMQ servers to break;
- :mod:`pipeline.testing.proxy`: a TCP proxy on 127.0.0.1 that cuts and delays connections;
- :mod:`pipeline.testing.inline`: run steps in this process, without a broker.
"""

from pipeline.testing.llm_server import (
    ANONYMOUS_RUN,
    MAX_BODY_BYTES,
    RUN_ID_HEADER,
    Fault,
    Reply,
    Route,
    Script,
    ScriptedLLMServer,
    ScriptError,
    Stats,
    ToolCall,
    TurnStats,
    fetch_stats,
    main,
    reset_stats,
)

__all__ = [
    "ANONYMOUS_RUN",
    "MAX_BODY_BYTES",
    "RUN_ID_HEADER",
    "Fault",
    "Reply",
    "Route",
    "Script",
    "ScriptError",
    "ScriptedLLMServer",
    "Stats",
    "ToolCall",
    "TurnStats",
    "fetch_stats",
    "main",
    "reset_stats",
]
