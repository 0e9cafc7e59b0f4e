"""``python -m pipeline.testing serve ...``: the scripted LLM server as its own process."""

import sys

from pipeline.testing.llm_server import main

sys.exit(main())
