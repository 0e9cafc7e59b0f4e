"""The embedded default's broker: kombu's filesystem transport, made safe for several processes.

kombu's own ``_put`` creates the message file, then writes it; a consumer in another process
can take the file in between and read nothing, and the worker dies on the empty message
("Unrecoverable error: JSONDecodeError"). Here a message is written under a name no consumer
looks at and renamed into place, so it appears whole or not at all; a consumer claims a file
by renaming it into a folder on the same filesystem, which exactly one consumer can do.
"""

from __future__ import annotations

import os
import uuid
from queue import Empty
from time import monotonic
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

ALIAS = "ravelfs"


class Channel(filesystem.Channel):
    """Atomic put, rename-to-claim get."""

    # kombu's base class names the argument ``message``, its filesystem channel ``payload``:
    # no signature satisfies both for mypy.
    def _put(self, queue: Any, message: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = f"{final}.part"  # not "<queue>.msg": consumers skip it
        with open(partial, "wb") as f:
            f.write(str_to_bytes(dumps(message)))
        os.replace(partial, final)

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        wanted = f"{queue}.msg"
        for filename in sorted(os.listdir(self.data_folder_in)):
            if filename.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(self.processed_folder, f"{os.getpid()}-{filename}")
            try:
                os.rename(os.path.join(self.data_folder_in, filename), claimed)
            except FileNotFoundError:  # another consumer took it
                continue
            try:
                with open(claimed, "rb") as f:
                    payload = f.read()
            finally:
                os.remove(claimed)
            return loads(bytes_to_str(payload))
        raise Empty()


class Transport(filesystem.Transport):
    """The filesystem transport with :class:`Channel`."""

    Channel = Channel


TRANSPORT_ALIASES[ALIAS] = f"{__name__}:Transport"
