"""The contract as a file (issue 16 point 6): docs/openapi.json is the service's OpenAPI document,
kept equal to what the app serves; and the app, fuzzed against it with schemathesis (in process,
ASGI, SQLite, the admin key), answers no 500 and nothing the document does not describe."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from zencourt_pipeline.cli import main, openapi_document
from zencourt_pipeline.domain import ApiScope
from zencourt_pipeline.service.app import create_app
from zencourt_pipeline.service.launch import GraphQLLauncher

from .conftest import make_batch

ROOT = Path(__file__).resolve().parents[2]
CHECKED_IN = ROOT / "docs" / "openapi.json"
REGENERATE = "zencourt openapi > docs/openapi.json"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance, ignored_auth]  # ignored_auth: a 2xx is probed again without the key
# Beyond the answers: what the document calls invalid is refused (4xx), and what it calls valid is
# taken (not 400/422), except where the product's rule is not one JSON Schema can say: an
# imageUrl the fetch policy allows, an opaque cursor, a signature; multipart fields carry no types;
# the bulk route answers 200 with each batch's own refusal by design; a branding logo must be a PNG or JPEG.
NOT_NEGATIVE_CHECKED = {"POST /storage/upload", "POST /video/batches:bulk"}
NOT_POSITIVE_CHECKED = {
    "POST /video/batches", "POST /video/batches:bulk", "GET /video/batches", "POST /storage/upload",
    "POST /webhooks/fal", "GET /media/{key}", "HEAD /media/{key}", "PUT /video/branding/{workspace_id}",
}


def checks_for(label: str):
    """The checks of one operation (`METHOD /path`)."""
    extra = [] if label in NOT_NEGATIVE_CHECKED else [negative_data_rejection]
    extra += [] if label in NOT_POSITIVE_CHECKED else [positive_data_acceptance]
    return CHECKS + extra
EXAMPLES_PER_OPERATION = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 20}  # x 16 operations x 2 keys


def test_docs_openapi_json_is_the_served_document(client):
    served = client.get("/openapi.json").json()
    document = openapi_document()
    assert json.loads(document) == served
    assert CHECKED_IN.read_text() == document, (
        f"docs/openapi.json differs from the service's OpenAPI document: run `{REGENERATE}` and commit it"
    )


def test_the_cli_prints_the_document(capsys):
    assert main(["openapi"]) == 0
    assert capsys.readouterr().out == openapi_document()


def test_the_document_describes_errors_bodies_and_auth(client):
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] == {**schemes["ApiKeyHeader"], "type": "apiKey", "in": "header", "name": "x-api-key"}
    assert schemes["BearerAuth"]["scheme"] == "bearer"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            protected = path.startswith(("/video", "/storage"))
            assert bool(operation.get("security")) == protected, (method, path)
            if protected:
                assert {"401", "403", "429", "503"} <= set(operation["responses"]), (method, path)
            for status, response in operation["responses"].items():
                if status >= "400" and status != "416" and path != "/health":  # 503 of /health: its report
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/ApiErrorBody", (method, path, status)
            if method in ("post", "delete"):
                assert "requestBody" in operation, (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]


class LaunchRecorder:
    """The webserver's GraphQL answer (the network edge of the operator actions)."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"launchPipelineExecution": {
            "__typename": "LaunchRunSuccess", "run": {"runId": "run-fuzz"}}}})


@pytest.fixture
def fuzz_app(settings, db, storage, verifier):
    for batch_id, status in (("b-done", "completed"), ("b-busy", "processing"), ("b-new", "pending")):
        batch, jobs = make_batch(batch_id, status=status, workspace_id="ws-fuzz" if batch_id == "b-done" else None)
        for job in jobs:
            job.update(status="completed", photo_key=f"batches/{batch_id}/p.jpg", video_url="file:///c.mp4")
        db.batches.insert_batch(batch, jobs)
    http = httpx.Client(transport=httpx.MockTransport(LaunchRecorder()))
    unlimited = settings.model_copy(update={"api_key_requests_per_minute": 0})  # no 429 in the middle of a run
    app = create_app(unlimited, db=db, storage=storage, verifier=verifier, launcher=GraphQLLauncher("http://web", client=http))
    with TestClient(app):  # lifespan
        yield app
    http.close()


@pytest.mark.parametrize("principal", ["admin", "workspace"])
def test_the_api_conforms_to_its_document_under_fuzzing(fuzz_app, db, auth, principal, record_property):
    """As the admin key, and as a workspace key with every scope (other workspaces' batches 404,
    storage keys outside its prefix 403)."""
    if principal == "workspace":
        auth = {"x-api-key": db.api_keys.create_key("ws-fuzz", list(ApiScope))[1]}
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    cases = {"total": 0}
    statuses: Counter[str] = Counter()
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode, examples in EXAMPLES_PER_OPERATION.items():

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            def check(case) -> None:
                cases["total"] += 1
                response = case.call(headers=dict(auth))
                statuses[f"{case.method} {case.path} {response.status_code}"] += 1
                case.validate_response(response, checks=checks_for(f"{case.method} {case.path}"))

            try:
                check()
            except Unsatisfiable:  # nothing to negate (an operation without parameters or body)
                assert mode is GenerationMode.NEGATIVE, operation.label
    seconds = time.monotonic() - started
    record_property("schemathesis_cases", cases["total"])
    print(f"\nschemathesis ({principal} key): {cases['total']} cases over {len(schema)} operations in {seconds:.1f} s")
    print("\n".join(f"  {key}: {n}" for key, n in sorted(statuses.items())))
    assert cases["total"] > 100
