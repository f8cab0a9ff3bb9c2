"""The web app's documented calls (the Node video server's flow: insert `video_gen_batch` and
`video_gen_jobs` rows, then `POST /video/generate` with job ids, poll, cancel, storage) replayed
against a real `zencourt serve` process configured only through the environment, on PostgreSQL.
Each answer's status and shape is checked against docs/contract.md section 4: the route's row
(its auth, and the answer's field names it documents) and the error format."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline_tests.conftest import make_batch
from zencourt_pipeline_tests.service.serve import ServeProcess
from zencourt_pipeline_tests.topology import ROOT, ScratchDatabases

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("webapp_compat")]  # one serve process

API_KEY = "compat-key-0b7e4f2a9c"
CONTRACT = (ROOT / "docs" / "contract.md").read_text()
ERROR_FIELDS = {"success", "error", "code", "message", "details"}


def contract_row(method: str, path: str) -> tuple[str, str]:
    """(auth, what) of the route's row in section 4's table."""
    prefix = f"| `{method} {path}` |"
    (line,) = [line for line in CONTRACT.splitlines() if line.startswith(prefix)]
    cells = [cell.strip() for cell in line[len(prefix) :].split(" | ")]
    return cells[0], cells[1]


def documented_names(method: str, path: str) -> set[str]:
    """The quoted field names the route's row gives (`"batchId"`, `"jobIds"`, ...)."""
    return set(re.findall(r'"([A-Za-z][A-Za-z0-9]*)"', contract_row(method, path)[1]))


def assert_documented(method: str, path: str, body: dict) -> None:
    """Every field of the answer is named in the route's row of the contract."""
    assert set(body) - documented_names(method, path) == set(), (method, path, sorted(body))


def assert_contract_error(response: httpx.Response, status: int, code: str) -> dict:
    """The section 4 error format, with a code the contract names."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ERROR_FIELDS and body["success"] is False and body["code"] == code
    assert f"`{code}`" in CONTRACT  # a documented code
    return body


class Service(ServeProcess):
    """The service; `call` sends the web app's key unless told not to."""

    def call(self, method: str, path: str, *, key: bool = True, **kwargs) -> httpx.Response:
        """One request as the web app sends it (with its key unless `key=False`)."""
        return super().call(method, path, "admin" if key else None, **kwargs)


@pytest.fixture(scope="module")
def app_database() -> Iterator[str]:
    scratch = ScratchDatabases("zc_compat", n=1)
    try:
        yield scratch.urls[0]
    finally:
        scratch.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory, app_database) -> Iterator[Service]:
    service = Service(tmp_path_factory.mktemp("compat"), app_database, API_KEY)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def db(service, app_database) -> Iterator[AppDatabase]:
    """The web app's own connection to its tables (the service migrated them at start-up)."""
    database = AppDatabase.connect(app_database)
    yield database
    database.db.dispose()


def job_ids(jobs: list[dict]) -> list[str]:
    """The ids of job rows."""
    return [job["id"] for job in jobs]


def test_root_and_health_answer_without_a_key(service):
    assert contract_row("GET", "/")[0] == contract_row("GET", "/health")[0] == "none"
    root = service.call("GET", "/", key=False)
    assert root.status_code == 200
    body = root.json()
    assert_documented("GET", "/", body)
    assert body["links"] == {"health": "/health", "api": "/openapi.json"}
    assert service.call("GET", body["links"]["health"], key=False).json()["status"] == "ok"
    assert service.call("GET", body["links"]["api"], key=False).status_code == 200


def test_the_web_app_flow_generate_by_job_ids_poll_retry_cancel(service, db):
    # 1. the web app inserts its rows (two batches of one listing), then names the jobs
    first, first_jobs = make_batch("wa1", n_jobs=2, listing_id="L-compat")
    second, second_jobs = make_batch("wa2", n_jobs=3, listing_id="L-compat")
    db.batches.insert_batch(first, first_jobs)
    db.batches.insert_batch(second, second_jobs)
    assert contract_row("POST", "/video/generate")[0] == "key"
    call = {"jobIds": job_ids(first_jobs) + job_ids(second_jobs)}
    generated = service.call("POST", "/video/generate", json=call)
    assert generated.status_code == 202, generated.text
    body = generated.json()
    assert_documented("POST", "/video/generate", body)
    for item in body["batches"]:
        assert_documented("POST", "/video/generate", item)
    assert (body["success"], body["batchId"], body["status"], body["unknownJobIds"]) == (True, "wa1", "pending", [])
    assert [(b["batchId"], b["status"], b["jobIds"], b["pickupRequested"]) for b in body["batches"]] == [
        ("wa1", "pending", job_ids(first_jobs), True),
        ("wa2", "pending", job_ids(second_jobs), True),
    ]

    # 2. the web app retries (a timeout on its side): still pending, asked again, same answer
    retried = service.call("POST", "/video/generate", json=call)
    assert retried.status_code == 202 and retried.json() == body

    # 3. the sensor has taken both batches: a late retry is a replay, not an error
    db.batches.start_batch("wa1")
    db.batches.start_batch("wa2")
    late = service.call("POST", "/video/generate", json=call)
    assert late.status_code == 200 and late.headers["Idempotent-Replayed"] == "true"
    assert [(b["status"], b["pickupRequested"]) for b in late.json()["batches"]] == [("processing", False)] * 2

    # 4. poll a batch
    assert contract_row("GET", "/video/batches/{id}")[0] == "key"
    polled = service.call("GET", "/video/batches/wa2")
    assert polled.status_code == 200
    batch = polled.json()
    assert {"errorCode", "blockedReason", "webhookStatus", "webhookErrorCode", "spend"} <= set(batch)
    assert (batch["id"], batch["listingId"], batch["status"]) == ("wa2", "L-compat", "processing")
    assert [job["id"] for job in batch["jobs"]] == job_ids(second_jobs)
    assert set(batch["spend"]) <= documented_names("GET", "/video/batches/{id}")  # usd, tasks, ...
    assert (batch["webhookStatus"], batch["webhookErrorCode"]) == (None, None)

    # 5. cancel the second batch by its job ids, as the Node server took them
    canceled = service.call("POST", "/video/cancel", json={"jobIds": job_ids(second_jobs)})
    assert canceled.status_code == 200, canceled.text
    assert_documented("POST", "/video/cancel", canceled.json())
    answer = canceled.json()
    assert (answer["success"], answer["canceled"], answer["jobIds"], answer["batchIds"]) == (
        True, 3, job_ids(second_jobs), ["wa2"],
    )  # fmt: skip
    assert answer["providerTasksPending"] == []  # no provider task was started
    polled = service.call("GET", "/video/batches/wa2").json()
    assert polled["status"] == "canceled" and polled["webhookStatus"] == "pending"

    # 6. a generate for the finished batch (and an unknown id): 200, nothing restarted
    finished = service.call("POST", "/video/generate", json={"jobIds": [*job_ids(second_jobs), "wa-unknown"]})
    assert finished.status_code == 200 and finished.headers["Idempotent-Replayed"] == "true"
    assert (finished.json()["status"], finished.json()["unknownJobIds"]) == ("canceled", ["wa-unknown"])
    assert {job.status for job in db.batches.get_jobs("wa2")} == {"canceled"}
    assert db.batches.get_batch("wa2").status == "canceled"

    # 7. nothing known: 404 in the error format, naming the ids
    unknown = service.call("POST", "/video/generate", json={"jobIds": ["wa-nobody"]})
    assert assert_contract_error(unknown, 404, "NOT_FOUND")["details"] == {"unknownJobIds": ["wa-nobody"]}
    both = service.call("POST", "/video/generate", json={"jobIds": ["wa1-0"], "batchId": "wa1"})
    assert_contract_error(both, 400, "INVALID_INPUT")


def test_storage_upload_signed_url_delete(service):
    content = b"\xff\xd8\xff\xe0 not really a jpeg"
    upload = service.call(
        "POST", "/storage/upload", data={"key": "listings/L-compat/photo.jpg"},
        files={"file": ("photo.jpg", content, "image/jpeg")},
    )  # fmt: skip
    assert upload.status_code == 200, upload.text
    assert_documented("POST", "/storage/upload", upload.json())
    assert (upload.json()["key"], upload.json()["contentType"], upload.json()["size"]) == (
        "listings/L-compat/photo.jpg", "image/jpeg", len(content),
    )  # fmt: skip
    signed = service.call("POST", "/storage/signed-url", json={"key": "listings/L-compat/photo.jpg", "expiresIn": 600})
    assert signed.status_code == 200
    assert_documented("POST", "/storage/signed-url", signed.json())
    assert signed.json()["expiresIn"] == 600 and signed.json()["url"]
    deleted = service.call("DELETE", "/storage/delete", json={"key": "listings/L-compat/photo.jpg"})
    assert deleted.status_code == 200 and deleted.json() == {
        "success": True, "key": "listings/L-compat/photo.jpg", "deleted": True
    }  # fmt: skip
    assert_documented("DELETE", "/storage/delete", deleted.json())
    again = service.call("DELETE", "/storage/delete", json={"key": "listings/L-compat/photo.jpg"})
    assert again.status_code == 200 and again.json()["deleted"] is False


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("POST", "/video/generate", {"json": {"jobIds": ["wa1-0"]}}),
        ("POST", "/video/cancel", {"json": {"jobIds": ["wa1-0"]}}),
        ("GET", "/video/batches/wa1", {}),
        ("POST", "/storage/signed-url", {"json": {"key": "a/b.jpg"}}),
        ("DELETE", "/storage/delete", {"json": {"key": "a/b.jpg"}}),
    ],
)
def test_the_key_routes_refuse_a_call_without_the_key(service, method, path, payload):
    row_path = "/video/batches/{id}" if path.startswith("/video/batches/") else path
    assert contract_row(method, row_path)[0] == "key"
    assert_contract_error(service.call(method, path, key=False, **payload), 401, "UNAUTHORIZED")
