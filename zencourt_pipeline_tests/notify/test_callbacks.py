"""A batch's own callback URL (issue 14 point 6): every webhook of the batch is written twice (the
global URL's row and the callback's), both signed the same way; the callback goes through the
SSRF-safe client, so an address the policy refuses is a failed attempt, never a request."""

from __future__ import annotations

import json

import pytest

from zencourt_pipeline.net.policy import FetchPolicy
from zencourt_pipeline_tests.conftest import make_batch
from zencourt_pipeline_tests.notify.test_deliverer import PATH, Receiver, _deliverer, _expected_signature

LOOPBACK = FetchPolicy.from_hosts(["127.0.0.1"])


def _batch_with_callback(db, callback_url: str, batch_id: str = "cb1") -> None:
    batch, jobs = make_batch(batch_id, n_jobs=1, callback_url=callback_url)
    db.batches.insert_batch(batch, jobs)
    assert db.batches.fail_job(jobs[0]["id"], "INVALID_INPUT", "photo could not be decoded")


def test_a_callback_batch_gets_each_webhook_for_both_urls(db):
    with Receiver() as global_receiver, Receiver() as callback_receiver:
        callback_url = callback_receiver.url.replace(PATH, "/hooks/zencourt?token=t1")
        _batch_with_callback(db, callback_url)
        rows = db.outbox.rows("cb1")
        assert [(row.event, row.target_url) for row in rows] == [("clip.failed", None), ("clip.failed", callback_url)]
        deliverer = _deliverer(db, global_receiver.url, callback_policy=LOOPBACK)
        assert deliverer.deliver_due() == {"claimed": 2, "delivered": 2, "failed": 0, "dead": 0}
        deliverer.close()
    (sent_global,) = global_receiver.requests
    (sent_callback,) = callback_receiver.requests
    assert sent_callback["path"] == "/hooks/zencourt?token=t1"
    for request, row in ((sent_global, rows[0]), (sent_callback, rows[1])):
        headers = request["headers"]
        assert request["body"] == row.body.encode()
        assert headers["X-Webhook-Id"] == row.id
        assert headers["X-Webhook-Signature"] == _expected_signature(headers["X-Webhook-Timestamp"], request["body"])
    a, b = json.loads(sent_global["body"]), json.loads(sent_callback["body"])
    assert a.pop("id") != b.pop("id") and a.pop("occurredAt") and b.pop("occurredAt")
    assert a == b and a["event"] == "clip.failed" and a["batchId"] == "cb1"
    # the status API's webhookStatus follows the global URL's terminal row
    assert db.batches.finish_batch("cb1", "failed", error="x", error_code="ALL_CLIPS_FAILED")
    assert [row.target_url for row in db.outbox.rows("cb1")][-2:] == [None, callback_url]
    assert db.outbox.batch_webhooks("cb1").terminal_status == "pending"


def test_callbacks_go_out_without_the_global_url(db):
    with Receiver() as callback_receiver:
        _batch_with_callback(db, callback_receiver.url)
        deliverer = _deliverer(db, None, callback_policy=LOOPBACK)
        assert deliverer.deliver_due() == {"claimed": 1, "delivered": 1, "failed": 0, "dead": 0}
        deliverer.close()
    assert len(callback_receiver.requests) == 1
    assert [row.status for row in db.outbox.rows("cb1")] == ["pending", "delivered"]  # the global row waits


def test_a_callback_to_a_private_address_is_refused_at_delivery(db):
    """A row written directly (the web app's insert) to a loopback callback: the default policy
    refuses the address before any connection (plain http allowed here, so the address is what is
    refused); the attempt fails and is retried like any other."""
    with Receiver() as callback_receiver:
        _batch_with_callback(db, callback_receiver.url)
        deliverer = _deliverer(db, None, callback_policy=FetchPolicy(allow_http=True))  # public addresses only
        assert deliverer.deliver_due() == {"claimed": 1, "delivered": 0, "failed": 1, "dead": 0}
        deliverer.close()
    assert callback_receiver.requests == []
    row = db.outbox.rows("cb1")[1]
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error.startswith("INVALID_INPUT: refusing callback URL host '127.0.0.1'")


def test_a_batch_without_a_callback_writes_one_row(db):
    batch, jobs = make_batch("cb2", n_jobs=1)
    db.batches.insert_batch(batch, jobs)
    db.batches.fail_job(jobs[0]["id"], "INVALID_INPUT", "x")
    assert [row.target_url for row in db.outbox.rows("cb2")] == [None]


def test_a_callback_name_that_resolves_inward_is_refused_at_connect(db):
    """DNS rebinding: the name passes the URL check, its address is checked (and pinned) when the
    connection is made, and refused there."""
    from zencourt_pipeline.net.fetch import safe_client

    policy = FetchPolicy(allow_http=True)
    with Receiver() as callback_receiver:
        port = callback_receiver.server.server_address[1]
        _batch_with_callback(db, f"http://hooks.example.com:{port}{PATH}")
        client = safe_client(policy, resolver=lambda host, port: ["127.0.0.1"])
        deliverer = _deliverer(db, None, callback_policy=policy, callback_client=client)
        assert deliverer.deliver_due() == {"claimed": 1, "delivered": 0, "failed": 1, "dead": 0}
        client.close()
    assert callback_receiver.requests == []
    assert "loopback" in db.outbox.rows("cb1")[1].last_error


def test_callback_urls_are_checked_before_any_request():
    from zencourt_pipeline.net.fetch import check_callback_url
    from zencourt_pipeline.net.policy import FetchError

    assert check_callback_url("https://app.example.com/hooks?t=1", FetchPolicy()) == "https://app.example.com/hooks?t=1"
    for url, why in (
        ("http://app.example.com/hooks", "plain http"),
        ("https://127.0.0.1/hooks", "loopback"),
        ("https://10.1.2.3/hooks", "private"),
        ("https://169.254.169.254/latest", "link-local"),
        ("https://[::1]/hooks", "loopback"),
        ("https://localhost/hooks", "loopback"),
        ("https://user:pw@app.example.com/hooks", "credentials"),
        ("ftp://app.example.com/hooks", "only https"),
    ):
        with pytest.raises(FetchError, match=why):
            check_callback_url(url, FetchPolicy())
    assert check_callback_url("https://127.0.0.1/hooks", LOOPBACK)  # an allowed private host
