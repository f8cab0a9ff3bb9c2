"""The domain's types and rules, written once (issue 26): intake and the HTTP models refuse the
same batches and jobs, pricing and the clients clamp durations the same way, and the provider
registry has one entry per provider, which the resources, the canceller and pricing all use."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from zencourt_pipeline.config import PROVIDER_NAMES, Settings
from zencourt_pipeline.db.records import Batch, Job
from zencourt_pipeline.defs.resources import PROVIDER_CONFIGS, STORAGE_RESOURCES
from zencourt_pipeline.domain import (
    CLIP_SECONDS_DEFAULT,
    CLIP_SECONDS_MAX,
    CLIP_SECONDS_MIN,
    MAX_JOBS_PER_BATCH,
    MAX_PROMPT_CHARS,
    PROVIDERS,
    GenerationRatio,
    Orientation,
    Provider,
    StorageBackend,
    clamp_clip_seconds,
    generation_ratio,
    names,
)
from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.media.frames import ORIENTATION_SIZES
from zencourt_pipeline.pipeline.cancel import cancel_failed_code
from zencourt_pipeline.pipeline.intake import BatchRejected, validate_batch, validate_job
from zencourt_pipeline.providers.chain import generator_class
from zencourt_pipeline.providers.rates import billed_seconds
from zencourt_pipeline.service.routes.batches import BatchCreate, JobCreate

URL = "https://example.com/a.jpg"


def test_the_enums_are_their_values():
    assert names(Orientation) == ("landscape", "vertical") and Orientation.VERTICAL == "vertical"
    assert PROVIDER_NAMES == ("runway", "fal", "local") == names(Provider)
    assert set(ORIENTATION_SIZES) == set(Orientation) and set(STORAGE_RESOURCES) == set(StorageBackend)
    assert BatchCreate.model_validate({"listingId": "L", "jobs": [{"imageUrl": URL}]}).model_dump_json(
        include={"orientation"}
    ) == '{"orientation":"landscape"}'


@pytest.mark.parametrize(
    ("job", "problem"),
    [
        ({"duration_seconds": CLIP_SECONDS_MIN - 1}, "duration_seconds"),
        ({"duration_seconds": CLIP_SECONDS_MAX + 1}, "duration_seconds"),
        ({"prompt": "x" * (MAX_PROMPT_CHARS + 1)}, "prompt"),
        ({"id": "bad id"}, "id"),
    ],
)
def test_intake_and_the_api_refuse_the_same_jobs(job, problem):
    row = {"id": "j1", "batch_id": "b1", "image_url": URL, **job}
    with pytest.raises(BatchRejected) as rejected:
        validate_job(Job(**row))
    assert rejected.value.code == ErrorCode.INVALID_INPUT and problem in rejected.value.message
    body = {"id": row["id"], "imageUrl": URL, "durationSeconds": row.get("duration_seconds", 5)}
    if "prompt" in row:
        body["prompt"] = row["prompt"]
    with pytest.raises(ValidationError):
        JobCreate.model_validate(body)


@pytest.mark.parametrize("seconds", [CLIP_SECONDS_MIN, CLIP_SECONDS_DEFAULT, CLIP_SECONDS_MAX])
def test_intake_and_the_api_accept_the_same_jobs(seconds):
    validate_job(Job(id="j1", batch_id="b1", image_url=URL, duration_seconds=seconds, prompt="x" * MAX_PROMPT_CHARS))
    assert JobCreate.model_validate({"imageUrl": URL, "durationSeconds": seconds}).duration_seconds == seconds
    assert JobCreate.model_validate({"imageUrl": URL}).duration_seconds == CLIP_SECONDS_DEFAULT == Job(
        id="j", batch_id="b", image_url=URL
    ).duration_seconds


@pytest.mark.parametrize(
    ("orientation", "n_jobs", "problem"),
    [("diagonal", 1, "unknown orientation"), ("landscape", 0, "no jobs"), ("vertical", MAX_JOBS_PER_BATCH + 1, "at most")],
)
def test_intake_and_the_api_refuse_the_same_batches(orientation, n_jobs, problem):
    jobs = [Job(id=f"j{i}", batch_id="b1", image_url=URL) for i in range(n_jobs)]
    with pytest.raises(BatchRejected, match=problem):
        validate_batch(Batch(id="b1", listing_id="L", orientation=orientation), jobs)
    body = {"listingId": "L", "orientation": orientation, "jobs": [{"imageUrl": URL}] * n_jobs}
    with pytest.raises(ValidationError):
        BatchCreate.model_validate(body)


def test_clip_seconds_are_clamped_into_the_bounds():
    assert [clamp_clip_seconds(s) for s in (0, 1.4, 2, 5.5, 10, 30)] == [2, 2, 2, 6, 10, 10]


def test_the_registry_has_every_provider_and_everything_uses_it():
    assert set(PROVIDERS) == set(Provider) == set(PROVIDER_CONFIGS)
    for provider, spec in PROVIDERS.items():
        assert generator_class(provider).name == provider  # the client class it names
        assert PROVIDER_CONFIGS[provider].PROVIDER == provider
        assert cancel_failed_code(provider) == spec.cancel_failed_code
        if spec.base_url_setting:
            assert isinstance(getattr(Settings(), spec.base_url_setting), str)
    assert cancel_failed_code("runway") == ErrorCode.RUNWAY_CANCEL_FAILED
    assert cancel_failed_code("nobody") == ErrorCode.GENERATION_FAILED
    # pricing's billed seconds: Runway the clamped duration, fal Kling's nearest, local as asked
    assert [billed_seconds("runway", s) for s in (1, 7, 12)] == [2.0, 7.0, 10.0]
    assert [billed_seconds("fal", s) for s in (2, 7, 8, 12)] == [5.0, 5.0, 10.0, 10.0]
    assert billed_seconds("local", 7) == 7.0 and billed_seconds("nobody", 3) == 3.0


def test_outputs_default_to_the_four_and_refuse_unknown_shapes_sizes_and_repeats():
    from zencourt_pipeline.domain import DEFAULT_OUTPUTS, OutputShape, parse_outputs, primary_output

    assert parse_outputs(None) == DEFAULT_OUTPUTS
    assert [s.name for s in DEFAULT_OUTPUTS] == [
        "landscape-1920x1080-branded", "landscape-1920x1080-unbranded", "vertical-1080x1920-branded", "vertical-1080x1920-unbranded",
    ]  # fmt: skip
    [square] = parse_outputs('[{"shape": "square", "branded": false}]')
    assert (square.size, square.branded) == ((1080, 1080), False)
    assert parse_outputs('[{"shape": "landscape", "width": 1280, "height": 720}]')[0].size == (1280, 720)
    for text, message in (
        ('[{"shape": "round"}]', "outputs.0.shape"),
        ('[{"shape": "square", "width": 1920, "height": 1080}]', "a square output is 1080x1080"),
        ("[]", "at least one"),
        ('[{"shape": "portrait"}, {"shape": "portrait", "width": 1080, "height": 1350}]', "portrait-1080x1350-branded twice"),
    ):
        with pytest.raises(BatchRejected, match=message):
            parse_outputs(text)
    primary, rendered = primary_output(DEFAULT_OUTPUTS, OutputShape.VERTICAL)
    assert (primary.name, rendered) == ("vertical-1080x1920-branded", DEFAULT_OUTPUTS)
    squares = parse_outputs('[{"shape": "square"}]')
    assert primary_output(squares, OutputShape.LANDSCAPE) == (squares[0], squares)
    added, rendered = primary_output(squares, OutputShape.VERTICAL, required=True)
    assert added.name == "vertical-1080x1920-branded" and rendered == (added, *squares)


# -- generation ratios (issue 15 point 2) ---------------------------------------------------------------


def test_the_six_runway_ratios_with_their_sizes():
    assert [str(r) for r in GenerationRatio] == ["1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672"]
    assert GenerationRatio("1584:672").size == (1584, 672) and GenerationRatio.PORTRAIT_3_4.size == (832, 1104)


@pytest.mark.parametrize(("frame", "ratio"), [
    ((1280, 720), "1280:720"), ((1920, 1080), "1280:720"),  # 16:9
    ((720, 1280), "720:1280"), ((1080, 1920), "720:1280"),  # 9:16
    ((1024, 768), "1104:832"),  # 4:3
    ((768, 1024), "832:1104"), ((1080, 1350), "832:1104"),  # 3:4 and the 4:5 output
    ((1080, 1080), "960:960"), ((1000, 1100), "960:960"),  # 1:1
    ((2560, 1080), "1584:672"),  # 21:9
])  # fmt: skip
def test_every_ratio_is_reachable_from_its_frame(frame, ratio):
    assert generation_ratio(*frame) == GenerationRatio(ratio)


def test_every_ratio_maps_to_itself_and_the_orientations_keep_their_frame():
    assert {generation_ratio(*r.size) for r in GenerationRatio} == set(GenerationRatio)
    for orientation, size in ORIENTATION_SIZES.items():  # the clips normalize and compose expect
        assert generation_ratio(*size).size == size, orientation


@pytest.mark.parametrize("bad", ["4:3", "1280x720", "1920:1080", "", "960:961"])
def test_an_unknown_ratio_is_refused(bad):
    with pytest.raises(ValueError):
        GenerationRatio(bad)


@pytest.mark.parametrize("frame", [(0, 720), (1280, 0), (-1280, 720), (1280.0, 720)])
def test_a_frame_without_a_positive_size_has_no_ratio(frame):
    with pytest.raises(ValueError, match="no generation ratio"):
        generation_ratio(*frame)
