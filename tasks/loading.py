"""Imports the workflow modules named by ``RAVEL_WORKFLOWS``, refusing to start on a bad one."""

from __future__ import annotations

import importlib
import os
import sys
import traceback

from pipeline.errors import ConfigurationError
from pipeline.redact import redact_text


def load_workflows(modules: tuple[str, ...]) -> None:
    """Import ``modules`` (their workflows register themselves as they load).

    Raises:
        ConfigurationError: a module cannot be imported or raises as it loads, in one line
            naming the module and where it raised.
    """
    # Workflow modules are importable from the working directory, as with `celery -A`.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigurationError(
                f"RAVEL_WORKFLOWS names {name!r}, which cannot be imported: {exc}"
            ) from exc
        except Exception as exc:
            # A module that raises as it loads (a missing setting, a bug): refuse to start
            # rather than serve the other modules' workflows without it; say where, in a line.
            raise ConfigurationError(
                f"RAVEL_WORKFLOWS names {name!r}, which raised {type(exc).__name__} on import: "
                f"{redact_text(str(exc), 500)}{_raised_at(name, exc)}"
            ) from exc


def _raised_at(module: str, exc: Exception) -> str:
    """Where in ``module`` the import failed (the line of the module's own file)."""
    if isinstance(exc, SyntaxError):  # its message names the file and line already
        return ""
    frames = traceback.extract_tb(exc.__traceback__)
    own = module.replace(".", os.sep)
    in_module = [f for f in frames if f.filename.endswith((f"{own}.py", f"{own}/__init__.py"))]
    frame = (in_module or frames)[-1]
    return f" ({frame.filename}, line {frame.lineno})"


__all__ = ["load_workflows"]
