"""FalGenerator against the fake fal queue over real HTTP (webhooks included)."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from zencourt_pipeline.domain import GenerationRatio
from zencourt_pipeline.media.ffmpeg import probe
from zencourt_pipeline.providers.base import GenerationError, TaskRef, TaskState
from zencourt_pipeline.providers.fal import FalGenerator, fal_duration
from zencourt_pipeline.providers.fal_webhook import FalWebhookVerifier, parse_fal_webhook
from zencourt_pipeline_tests.fakes.fal import FakeFal, FalScript
from zencourt_pipeline_tests.fakes.fixtures import (  # noqa: F401
    FakeClock,
    MaxJitter,
    fake_fal,
    make_photo,
    make_request,
    photo,
    poll_until_done,
    webhook_receiver,
)

MODEL = "fal-ai/kling-video/v2.1/standard/image-to-video"


def _gen(fake: FakeFal, clock: FakeClock | None = None, **kwargs) -> FalGenerator:
    clock = clock or FakeClock()
    return FalGenerator(
        fake.key, queue_url=fake.url, sleep=clock.sleep, clock=clock, rng=MaxJitter(), **kwargs
    )


# -------------------------------------------------------------------------------------- submit


def test_submit_crops_and_sends_a_valid_input(fake_fal, photo):  # noqa: F811
    gen = _gen(fake_fal, webhook_url="https://hooks.example.com/webhooks/fal?x=1&y=2")
    ref = gen.submit(make_request(photo)).ref
    assert ref.provider == "fal" and fake_fal.counts["queued"] == 1
    req = fake_fal.requests[ref.task_id]
    body = req.body
    assert body["duration"] == "5" and body["cfg_scale"] == 0.5
    assert body["negative_prompt"] == "blur, distort, and low quality"
    assert body["prompt"] == "slow push-in through the living room"
    assert body["image_url"].startswith("data:image/jpeg;base64,")
    width, height = req.image_size  # the 800x600 photo was cropped to 16:9
    assert width / height == pytest.approx(1280 / 720, rel=0.01)
    assert req.webhook_url == "https://hooks.example.com/webhooks/fal?x=1&y=2"  # round-tripped URL-encoded
    for kind, suffix in (("status_url", "/status"), ("response_url", ""), ("cancel_url", "/cancel")):
        url = ref.meta[kind]
        assert url == f"{fake_fal.url}/fal-ai/kling-video/requests/{ref.task_id}{suffix}"
        assert "v2.1" not in url


def test_vertical_crop_and_durations(fake_fal, photo):  # noqa: F811
    gen = _gen(fake_fal)
    ref = gen.submit(make_request(photo, orientation="vertical", duration_seconds=8)).ref
    req = fake_fal.requests[ref.task_id]
    assert req.body["duration"] == "10"
    width, height = req.image_size
    assert width / height == pytest.approx(720 / 1280, rel=0.01)
    assert [fal_duration(s) for s in (2, 5, 7, 8, 10, 15)] == ["5", "5", "5", "10", "10", "10"]


@pytest.mark.parametrize("ratio", list(GenerationRatio))
def test_kling_gets_the_photo_cropped_to_the_generation_ratio(fake_fal, photo, ratio):  # noqa: F811
    # Kling's image-to-video has no aspect input: its clip follows the photo, so the photo is the ratio
    ref = _gen(fake_fal).submit(make_request(photo, ratio=ratio)).ref
    width, height = fake_fal.requests[ref.task_id].image_size
    assert width / height == pytest.approx(ratio.size[0] / ratio.size[1], rel=0.01)


def test_kling_refuses_an_unknown_ratio_before_any_request(fake_fal, photo):  # noqa: F811
    with pytest.raises(GenerationError) as err:
        _gen(fake_fal).submit(make_request(photo, ratio="4:3"))
    assert err.value.code == "INVALID_INPUT" and fake_fal.counts["queued"] == 0


def test_the_fake_validates_like_the_real_api(fake_fal):  # noqa: F811
    url = f"{fake_fal.url}/{MODEL}"
    headers = {"Authorization": f"Key {fake_fal.key}"}
    good = {"prompt": "pan", "image_url": "https://cdn.example.com/a.jpg", "duration": "5"}
    assert httpx.post(url, json=good, headers=headers).status_code == 200
    for bad in (
        {**good, "duration": 5},
        {**good, "duration": "7"},
        {k: v for k, v in good.items() if k != "prompt"},
        {k: v for k, v in good.items() if k != "image_url"},
        {**good, "aspect_ratio": "16:9"},
        {**good, "cfg_scale": 2},
    ):
        response = httpx.post(url, json=bad, headers=headers)
        assert response.status_code == 422, bad
        assert response.json()["detail"][0]["type"]
    assert httpx.post(url, json=good, headers={"Authorization": "Bearer x"}).status_code == 401
    assert httpx.post(f"{fake_fal.url}/fal-ai/unknown-model", json=good, headers=headers).status_code == 404
    assert fake_fal.counts["queued"] == 1


def test_content_policy_on_submit_is_final(fake_fal, photo):  # noqa: F811
    fake_fal.submit_faults.append("content_policy")
    with pytest.raises(GenerationError) as err:
        _gen(fake_fal).submit(make_request(photo))
    assert err.value.code == "FAL_CONTENT_POLICY" and not err.value.fallback


def test_other_422_is_invalid_input(fake_fal, photo):  # noqa: F811
    fake_fal.submit_faults.append("invalid")
    with pytest.raises(GenerationError) as err:
        _gen(fake_fal).submit(make_request(photo))
    assert err.value.code == "INVALID_INPUT" and not err.value.fallback


def test_a_429_on_submit_queued_nothing_and_is_retried_after_its_retry_after(fake_fal, photo):  # noqa: F811
    fake_fal.submit_faults.append(429)  # answered with Retry-After: 1
    clock = FakeClock()
    task = _gen(fake_fal, clock).submit(make_request(photo))
    assert task.ref.task_id in fake_fal.requests
    assert fake_fal.counts["submit"] == 2 and fake_fal.counts["queued"] == 1
    assert fake_fal.fault_log.count("submit_429") == 1 and clock.sleeps and clock.sleeps[0] >= 1.0


def test_a_429_storm_on_submit_ends_rate_limited_with_nothing_queued(fake_fal, photo):  # noqa: F811
    fake_fal.submit_faults.extend([429] * 10)
    with pytest.raises(GenerationError) as err:
        _gen(fake_fal).submit(make_request(photo))
    assert err.value.code == "FAL_RATE_LIMITED" and err.value.fallback and not err.value.ambiguous
    assert fake_fal.counts["queued"] == 0 and fake_fal.counts["submit"] >= 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_on_submit_is_an_answer_lost_never_resent_nor_fallen_back(fake_fal, photo, status):  # noqa: F811
    # issue 11 defect 4: this used to fall back (FAL_UNAVAILABLE, fallback): the request may be queued
    fake_fal.submit_faults.extend([status] * 5)
    clock = FakeClock()
    with pytest.raises(GenerationError) as err:
        _gen(fake_fal, clock).submit(make_request(photo))
    assert err.value.code == "PROVIDER_ANSWER_LOST" and err.value.ambiguous and not err.value.fallback
    assert fake_fal.counts["submit"] == 1 and clock.sleeps == []


def test_a_dropped_submit_answer_is_an_answer_lost(fake_fal, photo):  # noqa: F811
    fake_fal.drop_answer_next_submits(1)
    clock = FakeClock()
    with pytest.raises(GenerationError) as err:
        _gen(fake_fal, clock).submit(make_request(photo))
    assert err.value.code == "PROVIDER_ANSWER_LOST" and err.value.ambiguous and not err.value.fallback
    assert getattr(err.value, "model", None) == MODEL
    # the request IS queued at fal, and was sent exactly once
    assert fake_fal.counts["submit"] == 1 and fake_fal.counts["queued"] == 1 and clock.sleeps == []
    assert fake_fal.counts["submit_answer_dropped"] == 1


def test_a_late_submit_answer_past_the_read_timeout_is_an_answer_lost(fake_fal, photo):  # noqa: F811
    fake_fal.answer_late_next_submits(1, 1.0)
    gen = _gen(fake_fal, timeout=httpx.Timeout(0.3, connect=2.0))
    with pytest.raises(GenerationError) as err:
        gen.submit(make_request(photo))
    assert err.value.code == "PROVIDER_ANSWER_LOST" and not err.value.fallback
    assert fake_fal.counts["submit"] == 1 and fake_fal.counts["queued"] == 1


def test_bad_key(fake_fal, photo):  # noqa: F811
    gen = FalGenerator("nope", queue_url=fake_fal.url, sleep=lambda s: None)
    with pytest.raises(GenerationError) as err:
        gen.submit(make_request(photo))
    assert err.value.code == "FAL_AUTH_FAILED" and err.value.fallback


# ----------------------------------------------------------------------------------------- poll


def test_poll_uses_the_returned_urls(fake_fal, photo):  # noqa: F811
    fake_fal.scripts.next(FalScript(statuses=["IN_QUEUE", "IN_PROGRESS", "IN_PROGRESS"]))
    gen = _gen(fake_fal)
    ref = gen.submit(make_request(photo)).ref
    final, seen = poll_until_done(gen, ref)
    assert [s.state for s in seen] == [
        TaskState.PENDING,
        TaskState.RUNNING,
        TaskState.RUNNING,
        TaskState.SUCCEEDED,
    ]
    assert final.output_url.startswith(f"{fake_fal.url}/files/")
    assert fake_fal.status_by_request[ref.task_id] == 4 and fake_fal.counts["result"] == 1
    assert fake_fal.counts["wrong_url"] == 0


def test_the_fake_404s_the_model_sub_path_form(fake_fal, photo):  # noqa: F811
    ref = _gen(fake_fal).submit(make_request(photo)).ref
    wrong = f"{fake_fal.url}/{MODEL}/requests/{ref.task_id}/status"
    assert httpx.get(wrong, headers={"Authorization": f"Key {fake_fal.key}"}).status_code == 404
    assert fake_fal.counts["wrong_url"] == 1


def test_poll_without_stored_urls_builds_owner_app_urls(fake_fal, photo):  # noqa: F811
    fake_fal.scripts.next(FalScript(statuses=[]))
    gen = _gen(fake_fal)
    ref = gen.submit(make_request(photo)).ref
    bare = TaskRef("fal", ref.task_id)  # e.g. a row persisted before meta existed
    assert gen.poll(bare).state is TaskState.SUCCEEDED
    assert fake_fal.counts["wrong_url"] == 0
    unknown = gen.poll(TaskRef("fal", "00000000-0000-4000-8000-000000000000"))
    assert unknown.state is TaskState.FAILED and unknown.error_code == "FAL_REQUEST_NOT_FOUND"


@pytest.mark.parametrize(
    ("outcome", "code"), [("fail", "FAL_GENERATION_FAILED"), ("content_policy", "FAL_CONTENT_POLICY")]
)
def test_completed_with_error(fake_fal, photo, outcome, code):  # noqa: F811
    fake_fal.scripts.next(FalScript(outcome=outcome, statuses=["IN_PROGRESS"]))
    gen = _gen(fake_fal)
    ref = gen.submit(make_request(photo)).ref
    final, _ = poll_until_done(gen, ref)
    assert final.state is TaskState.FAILED and final.error_code == code and final.error_message
    with pytest.raises(GenerationError) as err:
        gen.fetch_result(ref, photo.parent / "out.mp4")
    assert err.value.code == code and err.value.fallback is (code != "FAL_CONTENT_POLICY")


def test_status_outage_is_retried(fake_fal, photo):  # noqa: F811
    clock = FakeClock()
    fake_fal.scripts.next(FalScript(statuses=[]))
    gen = _gen(fake_fal, clock)
    ref = gen.submit(make_request(photo)).ref
    fake_fal.status_faults.extend([503, 502])
    assert gen.poll(ref).state is TaskState.SUCCEEDED
    assert fake_fal.status_by_request[ref.task_id] == 3
    assert clock.sleeps == [1.0, 2.0]


# --------------------------------------------------------------------------------------- cancel


def test_cancel(fake_fal, photo):  # noqa: F811
    fake_fal.scripts.next(FalScript(hold=True))
    gen = _gen(fake_fal)
    ref = gen.submit(make_request(photo)).ref
    assert gen.poll(ref).state is TaskState.RUNNING
    gen.cancel(ref)  # 202 CANCELLATION_REQUESTED
    assert gen.poll(ref).state is TaskState.CANCELED
    gen.cancel(ref)  # 400 ALREADY_COMPLETED
    gen.cancel(TaskRef("fal", "00000000-0000-4000-8000-000000000000"))  # 404 NOT_FOUND
    assert fake_fal.counts["cancel"] == 3 and fake_fal.counts["wrong_url"] == 0


# ---------------------------------------------------------------------------------------- fetch


def test_fetch_result(fake_fal, photo, tmp_path):  # noqa: F811
    fake_fal.scripts.next(FalScript(statuses=[]))
    gen = _gen(fake_fal)
    ref = gen.submit(make_request(photo)).ref
    final, _ = poll_until_done(gen, ref)
    out = gen.fetch_result(ref, tmp_path / "clip.mp4", final.output_url)
    assert (probe(out).width, probe(out).height) == (1280, 720)


def test_fetch_result_with_expired_url_refetches_the_result(fake_fal, photo, tmp_path):  # noqa: F811
    fake_fal.scripts.next(FalScript(statuses=[], expired_initially=1))
    gen = _gen(fake_fal)
    ref = gen.submit(make_request(photo)).ref
    final, _ = poll_until_done(gen, ref)
    out = gen.fetch_result(ref, tmp_path / "clip.mp4", final.output_url)
    assert out.is_file() and fake_fal.counts["download_expired"] == 1 and fake_fal.counts["result"] == 2


def test_truncated_output(fake_fal, photo, tmp_path):  # noqa: F811
    fake_fal.scripts.next(FalScript(statuses=[], output="truncated"))
    gen = _gen(fake_fal)
    ref = gen.submit(make_request(photo)).ref
    with pytest.raises(GenerationError) as err:
        gen.fetch_result(ref, tmp_path / "clip.mp4")
    assert err.value.code == "INVALID_OUTPUT" and err.value.fallback
    assert fake_fal.counts["download"] == 2  # complete and invalid twice (fresh URL): the provider's bad output


def test_expire_outputs_makes_old_urls_403_and_the_result_hands_out_a_new_one(fake_fal, photo, tmp_path):  # noqa: F811
    fake_fal.scripts.next(FalScript(statuses=[]))
    gen = _gen(fake_fal)
    ref = gen.submit(make_request(photo)).ref
    final, _ = poll_until_done(gen, ref)
    fake_fal.expire_outputs()
    out = gen.fetch_result(ref, tmp_path / "clip.mp4", final.output_url)
    assert out.is_file() and fake_fal.counts["download_expired"] == 1 and fake_fal.counts["download"] == 2
    assert fake_fal.counts["queued"] == 1


def test_failing_downloads_are_a_download_failure_not_a_fallback(fake_fal, photo, tmp_path):  # noqa: F811
    fake_fal.scripts.next(FalScript(statuses=[]))
    gen = _gen(fake_fal)
    ref = gen.submit(make_request(photo)).ref
    final, _ = poll_until_done(gen, ref)
    fake_fal.fail_next_downloads(100, status=503)
    with pytest.raises(GenerationError) as err:
        gen.fetch_result(ref, tmp_path / "clip.mp4", final.output_url)
    assert err.value.code == "OUTPUT_DOWNLOAD_FAILED" and err.value.download_failed and not err.value.fallback
    assert getattr(err.value, "downloads", None) == 2  # the given URL, then a fresh one
    fake_fal.download_faults.clear()
    assert gen.fetch_result(ref, tmp_path / "clip.mp4").is_file()


# ------------------------------------------------------------------------------------- webhooks


def test_webhook_is_signed_and_parsed(fake_fal, webhook_receiver, photo, tmp_path):  # noqa: F811
    gen = _gen(fake_fal, webhook_url=f"{webhook_receiver.url}/webhooks/fal")
    ref = gen.submit(make_request(photo)).ref
    received = webhook_receiver.wait_for(1)
    assert len(received) == 1 and received[0].path == "/webhooks/fal"
    verifier = FalWebhookVerifier(fake_fal.jwks_url)
    verifier.verify(received[0].headers, received[0].body)
    completion = parse_fal_webhook(received[0].body)
    assert completion.task_id == ref.task_id and completion.status is TaskState.SUCCEEDED
    assert completion.source == "webhook" and completion.provider == "fal"
    out = gen.fetch_result(ref, tmp_path / "clip.mp4", completion.output_url)
    assert probe(out).width == 1280


def test_duplicate_webhooks(fake_fal, webhook_receiver, photo):  # noqa: F811
    fake_fal.scripts.next(FalScript(webhook_copies=3, outcome="content_policy"))
    gen = _gen(fake_fal, webhook_url=f"{webhook_receiver.url}/hook")
    ref = gen.submit(make_request(photo)).ref
    received = webhook_receiver.wait_for(3)
    assert len(received) == 3
    verifier = FalWebhookVerifier(fake_fal.jwks_url)
    completions = []
    for item in received:
        verifier.verify(item.headers, item.body)
        completions.append(parse_fal_webhook(item.body))
    assert {c.task_id for c in completions} == {ref.task_id}
    assert {c.error_code for c in completions} == {"FAL_CONTENT_POLICY"}
    assert verifier.fetch_count == 1  # the JWKS is cached


def test_lost_webhook_still_completes_by_polling(fake_fal, webhook_receiver, photo):  # noqa: F811
    fake_fal.scripts.next(FalScript(webhook="lost", latency=0.0))
    gen = _gen(fake_fal, webhook_url=f"{webhook_receiver.url}/hook")
    ref = gen.submit(make_request(photo)).ref
    assert gen.poll(ref).state is TaskState.SUCCEEDED
    time.sleep(0.2)
    assert webhook_receiver.received == [] and fake_fal.counts["webhook_sent"] == 0


def test_a_reordered_submit_is_answered_after_its_webhook(fake_fal, webhook_receiver, photo):  # noqa: F811
    """`reorder_next_submits`: the result overtakes the answer; a request that cannot call back
    in time (a lost webhook) passes by and leaves the fault armed for the next."""
    fake_fal.reorder_next_submits(1, max_wait=5.0)
    gen = _gen(fake_fal, webhook_url=f"{webhook_receiver.url}/hook")
    fake_fal.scripts.next(FalScript(webhook="lost", latency=0.0))
    gen.submit(make_request(photo))
    assert fake_fal.counts["submit_answer_reordered"] == 0 and fake_fal.reorders_left == 1
    ref = gen.submit(make_request(photo)).ref
    received = webhook_receiver.received  # the webhook came before submit() returned
    assert [parse_fal_webhook(item.body).task_id for item in received] == [ref.task_id]
    assert fake_fal.counts["submit_answer_reordered"] == 1
    assert fake_fal.fault_log.count("webhook_before_answer") == 1


def test_failed_webhook_delivery_is_retried(fake_fal, webhook_receiver, photo):  # noqa: F811
    webhook_receiver.responses = [500]
    fake_fal.webhook_retry_delay = 0.01
    gen = _gen(fake_fal, webhook_url=f"{webhook_receiver.url}/hook")
    gen.submit(make_request(photo))
    received = webhook_receiver.wait_for(2)
    assert len(received) == 2 and received[0].body == received[1].body


def test_webhook_query_param_is_url_encoded(fake_fal, photo):  # noqa: F811
    target = "https://hooks.example.com/webhooks/fal?token=a&b=c"
    seen = {}
    real_client = httpx.Client()

    def capture(request: httpx.Request) -> httpx.Response:
        seen["url"] = str(request.url)
        return real_client.send(request)

    gen = FalGenerator(
        fake_fal.key,
        queue_url=fake_fal.url,
        webhook_url=target,
        client=httpx.Client(transport=httpx.MockTransport(capture)),
    )
    gen.submit(make_request(make_photo(photo.parent / "p2.jpg")))
    query = parse_qs(urlsplit(seen["url"]).query)
    assert query == {"fal_webhook": [target]}
    assert "token%3Da%26b%3Dc" in seen["url"]
    real_client.close()
