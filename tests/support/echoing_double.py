"""The OpenAI-compatible test double, plus the behaviours of real vendors it does not have: a 401
that quotes the key it refused, and replies of a chosen size.

Hosted APIs answer a wrong key with `Incorrect API key provided: <the key>`, and a proxy in front of
vLLM may quote the request; a misbehaving server ignores `max_tokens`. Everything else is the
double's own behaviour, over real HTTP on loopback.
"""

from __future__ import annotations

import json
from typing import Any

from shinsa.devcluster import openai_double
from shinsa.devcluster.openai_double import FakeOpenAI


class _Handler(openai_double._Handler):
    def do_POST(self) -> None:
        double = self.server.double
        assert isinstance(double, EchoingDouble)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) or b"{}"
        body = json.loads(raw)
        target = double.target_of(str(body.get("model", "")))
        if target in double.refuse_keys_of:
            extra = {k: v for k, v in body.items() if k not in ("model", "messages")}
            message = (
                f"Incorrect API key provided: {self.headers.get('Authorization')}. "
                f"Request settings: {json.dumps(extra)}"
            )
            self._json(401, {"error": {"message": message, "type": "invalid_request_error"}})
            return
        if target in double.huge_reply_chars:
            size = double.huge_reply_chars[target]
            message = {"role": "assistant", "content": "x" * size}
            self._json(
                200,
                {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": {}},
            )
            return
        # The double reads the body itself: hand it the bytes already read.
        self.rfile = _Replay(raw, self.rfile)
        super().do_POST()


class _Replay:
    def __init__(self, data: bytes, rest: Any) -> None:
        self._data = data
        self._rest = rest

    def read(self, n: int = -1) -> bytes:
        if self._data:
            out, self._data = self._data, b""
            return out
        return bytes(self._rest.read(n))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._rest, name)


class EchoingDouble(FakeOpenAI):
    """`refuse_keys_of`: the targets ("model", "judge") answered with a 401 quoting the request's
    Authorization header and settings; `huge_reply_chars`: per target, the length of a non-streamed
    reply that ignores max_tokens."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.refuse_keys_of: set[str] = set()
        self.huge_reply_chars: dict[str, int] = {}
        self._server.server_close()
        self._server = openai_double._Server(("127.0.0.1", int(options.get("port", 0))), _Handler)
        self._server.double = self
