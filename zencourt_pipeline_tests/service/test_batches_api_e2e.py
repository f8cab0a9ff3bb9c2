"""The batch API of issue 16 over a real `zencourt serve` process (uvicorn, configured only
through the environment, on PostgreSQL): idempotent create (replay and conflict), bulk creates
mixing valid and invalid batches, and list pagination across 250 batches while new ones keep
arriving, with no batch missed or repeated."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from zencourt_pipeline_tests.service.serve import ServeProcess
from zencourt_pipeline_tests.service.test_batches_api import batch_body
from zencourt_pipeline_tests.topology import ScratchDatabases

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("batches_api_e2e")]  # one serve process

API_KEY = "batches-e2e-key-41c7d2"
LISTING = "L-page"


@pytest.fixture(scope="module")
def serve(tmp_path_factory) -> Iterator[ServeProcess]:
    scratch = ScratchDatabases("zc_batches", n=1)
    service = ServeProcess(tmp_path_factory.mktemp("batches"), scratch.urls[0], API_KEY)
    try:
        yield service
    finally:
        service.stop()
        scratch.close()


def test_an_idempotent_create_replays_and_a_reused_key_with_another_body_conflicts(serve):
    headers = {"Idempotency-Key": "e2e-create-1"}
    created = serve.call("POST", "/video/batches", json=batch_body("idem-1"), headers=headers)
    assert created.status_code == 201, created.text
    assert created.json() == serve.call("GET", "/video/batches/idem-1").json()
    replay = serve.call("POST", "/video/batches", json=batch_body("idem-1"), headers=headers)
    assert (replay.status_code, replay.headers["idempotent-replayed"], replay.json()) == (200, "true", created.json())
    other = serve.call("POST", "/video/batches", json=batch_body("idem-2"), headers=headers)
    assert (other.status_code, other.json()["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert serve.call("GET", "/video/batches/idem-2").status_code == 404  # nothing made


def bulk_of(start: int, n: int) -> tuple[list, list[str]]:
    """`n` valid batches from index `start` with an invalid one after every tenth; their ids."""
    items: list = []
    ids = []
    for index in range(start, start + n):
        ids.append(f"page-{index:03d}")
        items.append(batch_body(ids[-1], n_jobs=1, listingId=LISTING))
        if index % 10 == 9:
            items.append({**batch_body(f"bad-{index}", n_jobs=1), "orientation": "diagonal"})
    return items, ids


def test_bulk_creates_mix_valid_and_invalid_and_250_batches_page_without_gaps_or_repeats(serve):
    made: list[str] = []
    for start, n in ((0, 90), (90, 90), (180, 70)):
        items, ids = bulk_of(start, n)
        assert len(items) <= 100
        response = serve.call("POST", "/video/batches:bulk", json={"batches": items})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["index"] for r in results] == list(range(len(items)))
        refused = [r for r in results if r["status"] != 201]
        assert len(refused) == n // 10 and {r["status"] for r in refused} == {400}
        assert all(r["error"]["code"] == "INVALID_INPUT" and r["batch"] is None for r in refused)
        assert [r["batch"]["id"] for r in results if r["status"] == 201] == ids
        made += ids
    assert len(made) == 250

    # walk the listing's pages while another client keeps creating newer batches of it: keyset
    # pages never shift, so the walk sees exactly the 250 that existed when it began
    stop = threading.Event()
    arrivals: list[str] = []

    def keep_creating() -> None:
        while not stop.is_set() and len(arrivals) < 40:
            batch_id = f"late-{len(arrivals):03d}"
            if serve.call("POST", "/video/batches", json=batch_body(batch_id, n_jobs=1, listingId=LISTING)).status_code == 201:
                arrivals.append(batch_id)

    writer = threading.Thread(target=keep_creating)
    writer.start()
    seen: list[str] = []
    pages = 0
    params: dict = {"listingId": LISTING, "limit": 23}
    try:
        while True:
            response = serve.call("GET", "/video/batches", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            seen += [batch["id"] for batch in body["batches"]]
            pages += 1
            if body["nextCursor"] is None:
                break
            params["cursor"] = body["nextCursor"]
    finally:
        stop.set()
        writer.join(60)
    assert arrivals, "no batch arrived during the walk"
    assert len(seen) == len(set(seen)), "a batch was listed twice"
    assert [batch_id for batch_id in seen if batch_id.startswith("page-")] == made[::-1]  # each once, newest first
    assert set(seen) - set(made) <= set(arrivals)  # besides them only batches that came before the first page
    assert pages >= 250 / 23
