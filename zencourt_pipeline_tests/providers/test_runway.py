"""RunwayGenerator against the fake Runway API over real HTTP."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import jsonschema
import pytest

from zencourt_pipeline.domain import GenerationRatio
from zencourt_pipeline.media.ffmpeg import probe
from zencourt_pipeline.net.backoff import RetryPolicy
from zencourt_pipeline.providers.base import GenerationError, TaskRef, TaskState, TaskStatus
from zencourt_pipeline.providers.runway import RunwayGenerator, classify_failure, trim_utf16
from zencourt_pipeline_tests.fakes.fixtures import (  # noqa: F401
    FakeClock,
    MaxJitter,
    fake_runway,
    make_request,
    photo,
    poll_until_done,
    webhook_receiver,
)
from zencourt_pipeline_tests.fakes.runway import FakeRunway, RunwayScript

# POST /v1/image_to_video, model gen4_turbo: the constraints of Runway's OpenAPI spec
# (version 2024-11-06), written out by hand.
_IMAGE_URI = {
    "anyOf": [
        {"type": "string", "minLength": 13, "maxLength": 2048, "pattern": "^https://"},
        {"type": "string", "minLength": 13, "maxLength": 5000, "pattern": "^runway://"},
        {"type": "string", "minLength": 13, "maxLength": 5242880, "pattern": "^data:image/"},
    ]
}
GEN4_TURBO_BODY_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["promptImage", "ratio", "model"],
    "additionalProperties": False,
    "properties": {
        "model": {"const": "gen4_turbo"},
        "promptImage": {
            "anyOf": [
                _IMAGE_URI,
                {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["uri", "position"],
                        "properties": {"uri": _IMAGE_URI, "position": {"const": "first"}},
                    },
                },
            ]
        },
        "promptText": {"type": "string", "minLength": 1, "maxLength": 1000},
        "ratio": {"enum": ["1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672"]},
        "duration": {"type": "integer", "minimum": 2, "maximum": 10},
        "seed": {"type": "integer", "minimum": 0, "maximum": 4294967295},
        "contentModeration": {
            "type": "object",
            "properties": {"publicFigureThreshold": {"enum": ["auto", "low"]}},
        },
    },
}
TASK_ID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"
_TASK_BASE = {"id": {"type": "string", "pattern": TASK_ID_PATTERN}, "createdAt": {"type": "string"}}
TASK_SCHEMA = {
    "oneOf": [
        {
            "type": "object",
            "required": ["id", "createdAt", "status"],
            "additionalProperties": False,
            "properties": {**_TASK_BASE, "status": {"enum": ["PENDING", "THROTTLED", "CANCELLED"]}},
        },
        {
            "type": "object",
            "required": ["id", "createdAt", "status", "progress"],
            "additionalProperties": False,
            "properties": {
                **_TASK_BASE,
                "status": {"const": "RUNNING"},
                "progress": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
        {
            "type": "object",
            "required": ["id", "createdAt", "status", "failure"],
            "additionalProperties": False,
            "properties": {
                **_TASK_BASE,
                "status": {"const": "FAILED"},
                "failure": {"type": "string"},
                "failureCode": {"type": "string"},
            },
        },
        {
            "type": "object",
            "required": ["id", "createdAt", "status", "output"],
            "additionalProperties": False,
            "properties": {
                **_TASK_BASE,
                "status": {"const": "SUCCEEDED"},
                "output": {"type": "array", "items": {"type": "string"}},
            },
        },
    ]
}


def _gen(fake: FakeRunway, clock: FakeClock | None = None, **kwargs) -> RunwayGenerator:
    clock = clock or FakeClock()
    return RunwayGenerator(
        fake.api_key,
        base_url=fake.url,
        sleep=clock.sleep,
        clock=clock,
        rng=MaxJitter(),
        **kwargs,
    )


@pytest.fixture
def clocked():
    """A fake Runway whose task latency runs on the same fake clock as the generator."""
    clock = FakeClock()
    with FakeRunway(clock=clock) as fake:
        yield fake, clock


# -------------------------------------------------------------------------------------- submit


def test_submit_sends_a_body_the_api_accepts(fake_runway, photo):  # noqa: F811
    gen = _gen(fake_runway)
    submitted = gen.submit(make_request(photo))
    assert submitted.ref.provider == "runway"
    assert submitted.ref.task_id in fake_runway.tasks
    assert fake_runway.counts["created"] == 1 and fake_runway.counts["create_rejected"] == 0
    body = fake_runway.create_bodies[0]
    jsonschema.validate(body, GEN4_TURBO_BODY_SCHEMA)
    assert body["model"] == "gen4_turbo" and body["ratio"] == "1280:720"
    assert body["duration"] == 5 and body["seed"] == 123456
    assert body["promptImage"].startswith("data:image/jpeg;base64,")
    assert len(body["promptImage"]) < 5_000_000
    assert body["promptText"] == "slow push-in through the living room"


def test_vertical_clamps_and_prompt_trim(fake_runway, photo):  # noqa: F811
    gen = _gen(fake_runway)
    long_prompt = "😀" + "x" * 1500  # the emoji is 2 UTF-16 code units
    gen.submit(
        make_request(photo, orientation="vertical", duration_seconds=15, prompt=long_prompt, seed=2**40 + 5)
    )
    gen.submit(make_request(photo, duration_seconds=1, prompt="   "))
    first, second = fake_runway.create_bodies
    for body in (first, second):
        jsonschema.validate(body, GEN4_TURBO_BODY_SCHEMA)
    assert first["ratio"] == "720:1280" and first["duration"] == 10
    assert len(first["promptText"].encode("utf-16-le")) // 2 == 1000
    assert 0 <= first["seed"] <= 4294967295
    assert second["duration"] == 2 and "promptText" not in second
    assert fake_runway.counts["created"] == 2


@pytest.mark.parametrize("ratio", list(GenerationRatio))
def test_the_body_carries_the_requested_ratio_and_the_clip_follows_it(fake_runway, photo, ratio):  # noqa: F811
    gen = _gen(fake_runway)
    ref = gen.submit(make_request(photo, ratio=ratio)).ref
    body = fake_runway.create_bodies[0]
    jsonschema.validate(body, GEN4_TURBO_BODY_SCHEMA)
    assert body["ratio"] == str(ratio) and ref.meta["ratio"] == str(ratio)
    assert fake_runway.counts["created"] == 1 and fake_runway.counts["create_rejected"] == 0


@pytest.mark.parametrize("overrides", [{"ratio": "4:3"}, {"orientation": "diagonal"}])
def test_an_unknown_ratio_or_orientation_is_refused_before_any_request(fake_runway, photo, overrides):  # noqa: F811
    with pytest.raises(GenerationError) as err:
        _gen(fake_runway).submit(make_request(photo, **overrides))
    assert err.value.code == "INVALID_INPUT" and not err.value.fallback
    assert fake_runway.create_bodies == []


def test_trim_utf16_never_splits_a_surrogate_pair():
    assert trim_utf16("ab😀", 3) == "ab"
    assert trim_utf16("ab😀", 4) == "ab😀"


def test_https_photo_url_is_used_when_given(fake_runway, photo):  # noqa: F811
    gen = _gen(fake_runway)
    url = "https://cdn.example.com/listing/photo-1.jpg"
    gen.submit(make_request(photo, photo_https_url=url))
    assert fake_runway.create_bodies[0]["promptImage"] == url
    # Not a usable HTTPS URL (an IP address): the data URI is sent instead.
    gen.submit(make_request(photo, photo_https_url="https://10.0.0.5/photo.jpg"))
    assert fake_runway.create_bodies[1]["promptImage"].startswith("data:image/jpeg")


def test_the_fake_validates_like_the_real_api(fake_runway, photo):  # noqa: F811
    headers = {"Authorization": f"Bearer {fake_runway.api_key}", "X-Runway-Version": "2024-11-06"}
    good = {
        "model": "gen4_turbo",
        "promptImage": "https://cdn.example.com/a.jpg",
        "ratio": "1280:720",
        "duration": 5,
    }
    url = f"{fake_runway.url}/v1/image_to_video"
    assert httpx.post(url, json=good, headers=headers).status_code == 200
    for bad in (
        {**good, "ratio": "1920:1080"},
        {**good, "duration": 11},
        {**good, "duration": 1},
        {**good, "duration": "5"},
        {**good, "promptText": ""},
        {**good, "promptText": "x" * 1001},
        {**good, "seed": -1},
        {**good, "promptImage": "http://cdn.example.com/a.jpg"},
        {**good, "promptImage": [{"uri": "https://cdn.example.com/a.jpg", "position": "last"}]},
        {**good, "promptImage": "data:image/jpeg;base64,bm90IGFuIGltYWdl"},
        {**good, "aspect_ratio": "16:9"},
        {k: v for k, v in good.items() if k != "ratio"},
    ):
        response = httpx.post(url, json=bad, headers=headers)
        assert response.status_code == 400, bad
        assert response.json()["error"] and response.json()["issues"]
    ok_array = {**good, "promptImage": [{"uri": "https://cdn.example.com/a.jpg", "position": "first"}]}
    assert httpx.post(url, json=ok_array, headers=headers).status_code == 200
    assert httpx.post(url, json=good, headers={"Authorization": headers["Authorization"]}).status_code == 400
    assert httpx.post(url, json=good, headers={**headers, "Authorization": "Bearer nope"}).status_code == 401
    assert fake_runway.counts["created"] == 2


def test_invalid_input_is_final(fake_runway, photo):  # noqa: F811
    gen = _gen(fake_runway, model="gen5_imaginary")
    with pytest.raises(GenerationError) as err:
        gen.submit(make_request(photo))
    assert err.value.code == "INVALID_INPUT" and not err.value.fallback


def test_bad_key_falls_back(fake_runway, photo):  # noqa: F811
    gen = RunwayGenerator("wrong-key", base_url=fake_runway.url, sleep=lambda s: None)
    with pytest.raises(GenerationError) as err:
        gen.submit(make_request(photo))
    assert err.value.code == "RUNWAY_AUTH_FAILED" and err.value.fallback
    assert fake_runway.counts["created"] == 0


# --------------------------------------------------------------------------- create failures


def test_429_storm_then_success(fake_runway, photo):  # noqa: F811
    clock = FakeClock()
    fake_runway.fail_next_creates(2, status=429)
    gen = _gen(
        fake_runway, clock, create_policy=RetryPolicy(max_attempts=4, base_delay=2.0, max_total_seconds=60)
    )
    submitted = gen.submit(make_request(photo))
    assert submitted.ref.task_id in fake_runway.tasks
    assert fake_runway.counts["create"] == 3 and fake_runway.counts["created"] == 1
    assert clock.sleeps == [2.0, 4.0]


def test_429_past_the_budget_falls_back(fake_runway, photo):  # noqa: F811
    fake_runway.fail_next_creates(10, status=429)
    gen = _gen(fake_runway, create_policy=RetryPolicy(max_attempts=3, base_delay=1.0))
    with pytest.raises(GenerationError) as err:
        gen.submit(make_request(photo))
    assert err.value.code == "RUNWAY_RATE_LIMITED" and err.value.fallback
    assert fake_runway.counts["create"] == 3 and fake_runway.counts["created"] == 0


# issue 11 defect 4: an ambiguous create used to be RUNWAY_UNAVAILABLE with fallback=True, so the
# job moved to fal while the Runway task might be live: paid twice. It is PROVIDER_ANSWER_LOST now.
@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_on_create_is_an_answer_lost_never_resent_nor_fallen_back(fake_runway, photo, status):  # noqa: F811
    fake_runway.fail_next_creates(5, status=status)
    clock = FakeClock()
    gen = _gen(fake_runway, clock)
    with pytest.raises(GenerationError) as err:
        gen.submit(make_request(photo))
    assert err.value.code == "PROVIDER_ANSWER_LOST" and err.value.ambiguous and not err.value.fallback
    assert fake_runway.counts["create"] == 1  # exactly one (possibly paid) create
    assert clock.sleeps == []


def test_ambiguous_5xx_that_did_create_a_task_is_not_doubled(fake_runway, photo):  # noqa: F811
    fake_runway.create_fault_creates_task = True
    fake_runway.fail_next_creates(1, status=502)
    with pytest.raises(GenerationError) as err:
        _gen(fake_runway).submit(make_request(photo))
    assert err.value.code == "PROVIDER_ANSWER_LOST" and not err.value.fallback
    assert fake_runway.counts["create"] == 1 and fake_runway.counts["created"] == 1


def test_read_timeout_on_create_is_not_resent(fake_runway, photo):  # noqa: F811
    fake_runway.answer_late_next_creates(1, 1.0)
    gen = _gen(fake_runway, timeout=httpx.Timeout(0.3, connect=2.0))
    with pytest.raises(GenerationError) as err:
        gen.submit(make_request(photo))
    assert err.value.code == "PROVIDER_ANSWER_LOST" and "ReadTimeout" in err.value.message
    assert not err.value.fallback and getattr(err.value, "model", None) == "gen4_turbo"
    assert fake_runway.counts["create"] == 1 and fake_runway.counts["created"] == 1


def test_a_dropped_create_answer_is_an_answer_lost(fake_runway, photo):  # noqa: F811
    fake_runway.drop_answer_next_creates(1)
    clock = FakeClock()
    with pytest.raises(GenerationError) as err:
        _gen(fake_runway, clock).submit(make_request(photo))
    assert err.value.code == "PROVIDER_ANSWER_LOST" and err.value.ambiguous and not err.value.fallback
    # the task exists at Runway; the create was sent once and never again
    assert fake_runway.counts["create"] == 1 and fake_runway.counts["created"] == 1 and clock.sleeps == []
    assert fake_runway.counts["create_answer_dropped"] == 1
    assert _gen(fake_runway).submit(make_request(photo)).ref.task_id  # the next create is answered


def test_the_daily_limit_429_still_creates_nothing_and_falls_back(fake_runway, photo):  # noqa: F811
    fake_runway.fail_next_creates(5, status=429)
    with pytest.raises(GenerationError) as err:
        _gen(fake_runway).submit(make_request(photo))
    assert err.value.code == "RUNWAY_RATE_LIMITED" and err.value.fallback and not err.value.ambiguous


def test_connect_errors_are_retried_then_fall_back(photo):  # noqa: F811
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    clock = FakeClock()
    gen = RunwayGenerator(
        "key",
        base_url=f"http://127.0.0.1:{port}",
        sleep=clock.sleep,
        clock=clock,
        rng=MaxJitter(),
        create_policy=RetryPolicy(max_attempts=3, base_delay=1.0),
    )
    with pytest.raises(GenerationError) as err:
        gen.submit(make_request(photo))
    assert err.value.code == "RUNWAY_UNAVAILABLE" and err.value.fallback and not err.value.ambiguous
    assert clock.sleeps == [1.0, 2.0]


# ----------------------------------------------------------------------------------------- poll


def test_every_status_is_mapped(fake_runway, photo):  # noqa: F811
    fake_runway.scripts.next(RunwayScript(statuses=["PENDING", "THROTTLED", "RUNNING", "RUNNING"]))
    gen = _gen(fake_runway)
    ref = gen.submit(make_request(photo)).ref
    final, seen = poll_until_done(gen, ref)
    assert [s.state for s in seen] == [
        TaskState.PENDING,
        TaskState.PENDING,
        TaskState.RUNNING,
        TaskState.RUNNING,
        TaskState.SUCCEEDED,
    ]
    assert seen[1].raw["status"] == "THROTTLED"
    assert 0 < seen[2].progress < seen[3].progress <= 1
    assert final.output_url.startswith(fake_runway.url + "/outputs/")
    for status in seen:
        jsonschema.validate(status.raw, TASK_SCHEMA)


@pytest.mark.parametrize(
    ("failure_code", "code", "fallback"),
    [
        ("SAFETY.INPUT.IMAGE", "RUNWAY_SAFETY_REJECTED", False),
        ("SAFETY.OUTPUT.VIDEO", "RUNWAY_SAFETY_REJECTED", False),
        ("INTERNAL.BAD_OUTPUT.CODE01", "RUNWAY_GENERATION_FAILED", True),
        (None, "RUNWAY_GENERATION_FAILED", True),
    ],
)
def test_failures_are_classified(fake_runway, photo, failure_code, code, fallback):  # noqa: F811
    fake_runway.scripts.next(RunwayScript(outcome="fail", failure_code=failure_code, statuses=["RUNNING"]))
    gen = _gen(fake_runway)
    ref = gen.submit(make_request(photo)).ref
    final, _ = poll_until_done(gen, ref)
    jsonschema.validate(final.raw, TASK_SCHEMA)
    assert final.state is TaskState.FAILED and final.error_code == code
    assert classify_failure(final) == (code, fallback)
    assert fake_runway.counts["created"] == 1  # nothing re-submitted


def test_classify_failure_inputs():
    assert classify_failure("SAFETY.INPUT.TEXT") == ("RUNWAY_SAFETY_REJECTED", False)
    assert classify_failure("INPUT_PREPROCESSING.SAFETY.TEXT") == ("RUNWAY_SAFETY_REJECTED", False)
    assert classify_failure("INTERNAL") == ("RUNWAY_GENERATION_FAILED", True)
    assert classify_failure({"status": "FAILED", "failureCode": "SAFETY.OUTPUT.VIDEO"})[1] is False
    assert classify_failure(GenerationError("RUNWAY_RATE_LIMITED", "x", fallback=True)) == (
        "RUNWAY_RATE_LIMITED",
        True,
    )
    assert classify_failure(TaskStatus(TaskState.FAILED, error_code="RUNWAY_TASK_NOT_FOUND")) == (
        "RUNWAY_TASK_NOT_FOUND",
        True,
    )


def test_cancelled_and_unknown_tasks(fake_runway, photo):  # noqa: F811
    fake_runway.scripts.next(RunwayScript(outcome="cancel", statuses=[]))
    gen = _gen(fake_runway)
    ref = gen.submit(make_request(photo)).ref
    assert gen.poll(ref).state is TaskState.CANCELED
    missing = gen.poll(TaskRef("runway", "6da960dd-ef88-40fc-9628-02e9b6a6a008"))
    assert missing.state is TaskState.FAILED and missing.error_code == "RUNWAY_TASK_NOT_FOUND"


def test_polling_never_faster_than_every_5_seconds(clocked, photo):  # noqa: F811
    fake, clock = clocked
    fake.scripts.next(RunwayScript(latency=12.0))
    fake.scripts.next(RunwayScript(latency=12.0))
    gen = _gen(fake, clock)
    first = gen.submit(make_request(photo)).ref
    second = gen.submit(make_request(photo, job_id="job-2")).ref
    final, seen = poll_until_done(gen, first)
    assert final.state is TaskState.SUCCEEDED
    assert [s.state for s in seen] == [
        TaskState.PENDING,
        TaskState.PENDING,
        TaskState.RUNNING,
        TaskState.SUCCEEDED,
    ]
    times = fake.poll_times[first.task_id]
    assert len(times) >= 3
    assert all(later - earlier >= 5.0 for earlier, later in zip(times, times[1:], strict=False))
    assert sum(clock.sleeps) >= 10.0  # real waiting would have taken this long: none happened
    # Another task is not held back by the first one's pacing...
    slept = len(clock.sleeps)
    gen.poll(second)
    assert len(clock.sleeps) == slept
    # ...but its own next poll is.
    gen.poll(second)
    assert clock.sleeps[-1] == pytest.approx(5.0)


def test_get_retries_429_and_5xx(fake_runway, photo):  # noqa: F811
    clock = FakeClock()
    gen = _gen(fake_runway, clock)
    ref = gen.submit(make_request(photo)).ref
    fake_runway.fail_next_gets(1, status=429)
    fake_runway.fail_next_gets(2, status=503)
    status = gen.poll(ref)
    assert status.state in (TaskState.PENDING, TaskState.RUNNING, TaskState.SUCCEEDED)
    assert fake_runway.polls_by_task[ref.task_id] == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_get_outage_is_retryable(fake_runway, photo):  # noqa: F811
    gen = _gen(fake_runway)
    ref = gen.submit(make_request(photo)).ref
    fake_runway.fail_next_gets(10, status=503)
    with pytest.raises(GenerationError) as err:
        gen.poll(ref)
    assert err.value.code == "RUNWAY_UNAVAILABLE" and err.value.retryable


# --------------------------------------------------------------------------------------- cancel


def test_cancel_is_idempotent(fake_runway, photo):  # noqa: F811
    fake_runway.scripts.next(RunwayScript(hold=True))
    gen = _gen(fake_runway)
    ref = gen.submit(make_request(photo)).ref
    assert gen.poll(ref).state is TaskState.RUNNING
    gen.cancel(ref)
    assert gen.poll(ref).state is TaskState.CANCELED
    gen.cancel(ref)  # deletes the finished task
    gen.cancel(ref)  # 404: fine
    gen.cancel(TaskRef("runway", "6da960dd-ef88-40fc-9628-02e9b6a6a008"))
    assert fake_runway.counts["delete"] == 4


# ---------------------------------------------------------------------------------------- fetch


def _succeeded(gen: RunwayGenerator, fake: FakeRunway, photo: Path, script: RunwayScript, **request):  # noqa: F811
    fake.scripts.next(script)
    ref = gen.submit(make_request(photo, **request)).ref
    final, _ = poll_until_done(gen, ref)
    assert final.state is TaskState.SUCCEEDED
    return ref, final


def test_fetch_result_downloads_a_real_mp4(fake_runway, photo, tmp_path):  # noqa: F811
    gen = _gen(fake_runway)
    ref, final = _succeeded(gen, fake_runway, photo, RunwayScript(statuses=[]), orientation="vertical")
    out = gen.fetch_result(ref, tmp_path / "clips" / "clip.mp4", final.output_url)
    info = probe(out)
    assert (info.width, info.height) == (720, 1280) and info.fps == pytest.approx(30)
    assert sorted(p.name for p in out.parent.iterdir()) == ["clip.mp4"]
    # Without a URL the client asks the task for its output.
    again = gen.fetch_result(ref, tmp_path / "again.mp4")
    assert again.stat().st_size == out.stat().st_size


def test_expired_output_url_gets_fresh_urls(fake_runway, photo, tmp_path):  # noqa: F811
    clock = FakeClock()
    gen = _gen(fake_runway, clock)
    ref, final = _succeeded(gen, fake_runway, photo, RunwayScript(statuses=[], expired_initially=1))
    polls = fake_runway.polls_by_task[ref.task_id]
    out = gen.fetch_result(ref, tmp_path / "clip.mp4", final.output_url)
    assert out.is_file() and probe(out).width == 1280
    assert fake_runway.counts["download_expired"] == 1
    assert fake_runway.polls_by_task[ref.task_id] == polls + 1  # one fresh GET of the task
    assert clock.sleeps[-1] == pytest.approx(5.0)  # the refresh GET respected the poll interval


def test_url_expiring_after_first_download(fake_runway, photo, tmp_path):  # noqa: F811
    gen = _gen(fake_runway)
    ref, final = _succeeded(gen, fake_runway, photo, RunwayScript(statuses=[], expire="first_download"))
    gen.fetch_result(ref, tmp_path / "a.mp4", final.output_url)
    gen.fetch_result(ref, tmp_path / "b.mp4", final.output_url)  # the same URL is dead now
    assert fake_runway.counts["download_expired"] == 1
    assert (tmp_path / "b.mp4").read_bytes() == (tmp_path / "a.mp4").read_bytes()


@pytest.mark.parametrize("output", ["truncated", "not_mp4"])
def test_invalid_outputs(fake_runway, photo, tmp_path, output):  # noqa: F811
    gen = _gen(fake_runway)
    ref, final = _succeeded(gen, fake_runway, photo, RunwayScript(statuses=[], output=output))
    with pytest.raises(GenerationError) as err:
        gen.fetch_result(ref, tmp_path / "clip.mp4", final.output_url)
    assert err.value.code == "INVALID_OUTPUT" and err.value.fallback
    assert fake_runway.counts["download"] == 2  # complete and invalid twice (the second from a fresh GET)
    assert list(tmp_path.glob("*clip.mp4*")) == []


def test_a_transfer_cut_short_is_a_download_failure_not_bad_output(fake_runway, photo, tmp_path):  # noqa: F811
    # it used to be INVALID_OUTPUT (fallback: a second paid generation for a download problem)
    gen = _gen(fake_runway)
    ref, final = _succeeded(gen, fake_runway, photo, RunwayScript(statuses=[], output="short_body"))
    with pytest.raises(GenerationError) as err:
        gen.fetch_result(ref, tmp_path / "clip.mp4", final.output_url)
    assert err.value.code == "OUTPUT_DOWNLOAD_FAILED" and err.value.download_failed and not err.value.fallback
    assert list(tmp_path.glob("*clip.mp4*")) == []


def test_expire_outputs_kills_issued_urls_and_a_fresh_get_hands_out_a_working_one(fake_runway, photo, tmp_path):  # noqa: F811
    gen = _gen(fake_runway)
    ref, final = _succeeded(gen, fake_runway, photo, RunwayScript(statuses=[]))
    fake_runway.expire_outputs()
    out = gen.fetch_result(ref, tmp_path / "clip.mp4", final.output_url)
    assert out.is_file() and fake_runway.counts["download_expired"] == 1 and fake_runway.counts["download"] == 2
    assert fake_runway.counts["created"] == 1


def test_failing_downloads_then_success(fake_runway, photo, tmp_path):  # noqa: F811
    gen = _gen(fake_runway)
    ref, final = _succeeded(gen, fake_runway, photo, RunwayScript(statuses=[]))
    fake_runway.fail_next_downloads(4, status=503)  # the first URL's 3 tries, then one of the fresh URL's
    out = gen.fetch_result(ref, tmp_path / "clip.mp4", final.output_url)
    assert out.is_file() and fake_runway.counts["download_fault"] == 4 and fake_runway.counts["download"] == 5
    fake_runway.fail_next_downloads(100, status=503)
    with pytest.raises(GenerationError) as err:
        gen.fetch_result(ref, tmp_path / "again.mp4", final.output_url)
    assert err.value.code == "OUTPUT_DOWNLOAD_FAILED" and not err.value.fallback
    assert getattr(err.value, "downloads", None) == 2


def test_wrong_size_output_is_downloaded_for_normalization(fake_runway, photo, tmp_path):  # noqa: F811
    gen = _gen(fake_runway)
    ref, final = _succeeded(gen, fake_runway, photo, RunwayScript(statuses=[], output="wrong_size"))
    out = gen.fetch_result(ref, tmp_path / "clip.mp4", final.output_url)
    assert (probe(out).width, probe(out).height) == (640, 360)


def test_output_download_sends_no_credentials(webhook_receiver, tmp_path):  # noqa: F811
    gen = RunwayGenerator("secret-key", base_url="http://127.0.0.1:9", sleep=lambda s: None)
    with pytest.raises(GenerationError):
        gen.fetch_result(TaskRef("runway", "x"), tmp_path / "c.mp4", webhook_receiver.url + "/out.mp4")
    sent = webhook_receiver.received[0]
    assert "authorization" not in sent.headers and "x-runway-version" not in sent.headers


def test_url_with_a_time_to_live(clocked, photo, tmp_path):  # noqa: F811
    fake, clock = clocked
    gen = _gen(fake, clock)
    ref, final = _succeeded(gen, fake, photo, RunwayScript(statuses=[], expire=30.0))
    clock.advance(31)  # e.g. the clip is fetched long after the task finished
    out = gen.fetch_result(ref, tmp_path / "clip.mp4", final.output_url)
    assert out.is_file() and fake.counts["download_expired"] == 1


def test_a_finished_tasks_reported_credits_reach_the_status(fake_runway, photo):  # noqa: F811
    # issue 11, defect 7: the cost Runway reports on the finished task was never read
    fake_runway.report_credits_per_second = 5
    gen = _gen(fake_runway)
    ref = gen.submit(make_request(photo, duration_seconds=5)).ref
    final, seen = poll_until_done(gen, ref)
    assert final.state is TaskState.SUCCEEDED and final.cost_credits == 25
    assert all(status.cost_credits is None for status in seen[:-1])
