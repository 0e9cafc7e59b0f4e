"""A cap on the size of an LLM reply, enforced while the reply is read.

The OpenAI SDK reads a whole reply into memory, then parses it: about three times the reply's
size at the peak. A misbehaving server or proxy answering 50 MB would cost a worker 150 MB,
and a larger answer would get it killed. Ravel keeps at most ``MAX_OUTPUT_CHARS`` of a reply
anyway, so a reply far beyond that is refused unread: by its ``Content-Length``, or, when it
has none (chunked), as soon as the bytes read pass the cap.

Replies are requested uncompressed (``Accept-Encoding: identity``), so the bytes counted are
the bytes the SDK holds; a server that compresses anyway is bounded by its compressed size.
"""

from __future__ import annotations

from collections.abc import Iterator

# The OpenAI SDK's HTTP library (a dependency of ``openai``): its response hooks and streams.
import httpx2
import openai

#: The largest LLM reply body read, in bytes: far above what a model can put in one reply.
MAX_REPLY_BYTES = 16 * 1024 * 1024

#: Headers the client sends with every request.
HEADERS = {"Accept-Encoding": "identity"}


class ReplyTooLarge(openai.OpenAIError):
    """The LLM server's reply was over :data:`MAX_REPLY_BYTES`; it was not read further.

    An ``OpenAIError``, so the SDK passes it on as it is instead of as a connection error.
    """

    def __init__(self, size: int | None = None) -> None:
        """Say how large the reply was, when its ``Content-Length`` said so."""
        limit = f"the {MAX_REPLY_BYTES}-byte limit on LLM replies"
        what = (
            f"the LLM reply is {size} bytes, over {limit}: it was not read"
            if size is not None
            else f"the LLM reply passed {limit}: it was read no further"
        )
        # No model writes that much: the server or a proxy in between misbehaves.
        super().__init__(f"{what} (check the server or proxy at OPENAI_BASE_URL)")


class _CappedStream(httpx2.SyncByteStream):
    """A response body that raises :class:`ReplyTooLarge` once more than the cap is read."""

    def __init__(self, inner: httpx2.SyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    def __iter__(self) -> Iterator[bytes]:
        read = 0
        for chunk in self._inner:
            read += len(chunk)
            if read > self._limit:
                raise ReplyTooLarge()
            yield chunk

    def close(self) -> None:
        self._inner.close()


def cap_reply(response: httpx2.Response) -> None:
    """Response hook: refuse an announced oversize body, cap the reading of any other."""
    length = response.headers.get("content-length", "").strip()
    if length.isdigit() and int(length) > MAX_REPLY_BYTES:
        raise ReplyTooLarge(int(length))
    if isinstance(response.stream, httpx2.SyncByteStream):
        response.stream = _CappedStream(response.stream, MAX_REPLY_BYTES)


def http_client() -> httpx2.Client:
    """An HTTP client for ``OpenAI(http_client=...)`` with the SDK's defaults and the cap."""
    return openai.DefaultHttpxClient(event_hooks={"response": [cap_reply]})
