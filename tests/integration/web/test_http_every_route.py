"""Every documented route, the same bad requests: no key, a wrong key, a malformed and an
unknown run id, a body that is not JSON, too large, or nested too deeply. Each answers its
status in JSON and changes nothing."""

from __future__ import annotations

import json

import pytest

from pipeline.web.openapi import PATHS
from tests.integration.web.support import error

UNKNOWN = "0b7c5e0e-3f7a-4c53-9a43-6c2f1e8d9b10"
ROUTES = [
    (method.upper(), path)
    for path, ops in PATHS.items()
    for method in ops
    if path != "/openapi.json"
]
#: a body each POST route accepts as far as its fields go
BODIES = {
    "/runs": {"workflow": "refund", "input": {}},
    "/runs/{run_id}/approve": {"wait_id": UNKNOWN},
    "/runs/{run_id}/reject": {"wait_id": UNKNOWN},
}


def _path(template: str, run_id: str) -> str:
    return template.replace("{run_id}", run_id).replace("{name}", "paid")


@pytest.mark.parametrize(("method", "template"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_refuses_bad_requests_in_json_and_changes_nothing(
    api, unchanged, method, template
):
    snapshot = unchanged()
    path = _path(template, UNKNOWN)
    body = BODIES.get(template, {}) if method == "POST" else None
    send = {"json": body} if body is not None else {}

    error(api.call(method, path, who=None, **send), 401, "unauthorized", "Bearer")
    error(
        api.call(method, path, who=None, headers={"Authorization": "Bearer rvl_nope"}, **send),
        401,
        "unauthorized",
        "not valid",
    )
    if "{run_id}" in template:
        for run_id in (UNKNOWN, "not-a-run-id", "1" * 300):
            error(
                api.call(method, _path(template, run_id), who="ops", **send), 404, "run_not_found"
            )
    if method == "POST":
        text = json.dumps(body)
        error(
            api.call(method, path, data=text, content_type="text/plain"),
            415,
            "unsupported_media_type",
        )
        error(
            api.call(method, path, data="{", content_type="application/json"), 400, "invalid_json"
        )
        huge = '{"x": "' + "y" * (2 << 20) + '"}'
        error(
            api.call(method, path, data=huge, content_type="application/json"),
            413,
            "payload_too_large",
        )
        deep = "[" * 100_000 + "]" * 100_000
        error(
            api.call(method, path, data=deep, content_type="application/json"),
            422,
            "invalid_input",
            "nested",
        )
        error(
            api.call(method, path, json={**(body or {}), "bogus": 1}),
            400,
            "unknown_field",
            "'bogus'",
        )
    else:
        error(api.call(method, path, query_string={"bogus": "1"}), 400, "unknown_field")
    snapshot.check()
