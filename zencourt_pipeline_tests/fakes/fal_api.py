"""What the fake fal queue (Kling image-to-video) accepts and how its requests behave: the
models and input fields Kling validates (`validate_kling_input`, answered as 422 `detail`
entries), `FalScript` (one request's scripted behaviour) and `FakeRequest` (one request's state)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zencourt_pipeline_tests.fakes.server import image_size_of_data_uri

MODELS = {
    "fal-ai/kling-video/v2.1/standard/image-to-video",
    "fal-ai/kling-video/v2.1/pro/image-to-video",
    "fal-ai/kling-video/v2.5-turbo/pro/image-to-video",
}
INPUT_FIELDS = {"prompt", "image_url", "duration", "negative_prompt", "cfg_scale", "tail_image_url"}


@dataclass
class FalScript:
    """How one request behaves.

    outcome: "succeed" | "fail" (COMPLETED with `error`/`error_type`, result 500 with
        X-Fal-Error-Type) | "content_policy" (COMPLETED with error, result 422
        content_policy_violation).
    statuses: step mode: the n-th status GET answers statuses[n] ("IN_QUEUE"/"IN_PROGRESS");
        then the request is completed. None = time mode (`latency`).
    latency: seconds from submit to completion in time mode (None = the fake's default).
    hold: stay IN_PROGRESS until `fake.release(request_id)`.
    output / expire / expired_initially: as for the Runway fake (URL forms of the result).
    webhook: "deliver" | "lost" (never called back) | "payload_error" (OK with a null payload).
    webhook_copies: how many times the same webhook is delivered (duplicates).
    """

    outcome: str = "succeed"
    error: str = "Internal error while generating the video"
    error_type: str = "runner_disconnected"
    statuses: list[str] | None = None
    latency: float | None = None
    hold: bool = False
    output: str = "ok"
    expire: str | float | None = None
    expired_initially: int = 0
    webhook: str = "deliver"
    webhook_copies: int = 1


@dataclass
class FakeRequest:
    id: str
    model: str
    body: dict[str, Any]
    script: FalScript
    created_at: float
    webhook_url: str | None
    gateway_request_id: str
    image_size: tuple[int, int] | None = None
    status_gets: int = 0
    released: bool = False
    final: str | None = None  # "succeed" | "fail" | "content_policy" | "canceled"
    tokens: list[str] = field(default_factory=list)
    expired_left: int = 0
    webhook_sent: bool = False
    webhook_withheld: bool = False  # its script loses the webhook: the fake withheld it (a fault hit)
    answer_held: bool = False  # its submit answer is held back (late): a webhook may overtake it

    @property
    def app_id(self) -> str:
        return "/".join(self.model.split("/")[:2])


def detail_entry(loc: list[Any], msg: str, type_: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": type_}


def validate_kling_input(body: Any) -> list[dict[str, Any]]:
    """422 `detail` entries for a Kling image-to-video input; [] when valid."""
    if not isinstance(body, dict):
        return [detail_entry(["body"], "Input should be a valid dictionary", "dict_type")]
    problems = []
    for key in sorted(set(body) - INPUT_FIELDS):
        problems.append(detail_entry(["body", key], "Extra inputs are not permitted", "extra_forbidden"))
    prompt = body.get("prompt")
    if prompt is None:
        problems.append(detail_entry(["body", "prompt"], "Field required", "missing"))
    elif not isinstance(prompt, str) or not 1 <= len(prompt) <= 2500:
        problems.append(detail_entry(["body", "prompt"], "String should have 1 to 2500 characters", "string_type"))
    image = body.get("image_url")
    if image is None:
        problems.append(detail_entry(["body", "image_url"], "Field required", "missing"))
    elif not isinstance(image, str) or not image.startswith(("https://", "http://", "data:image/")):
        problems.append(
            detail_entry(["body", "image_url"], "Input should be a valid URL or data URI", "url_parsing")
        )
    elif image.startswith("data:") and image_size_of_data_uri(image) is None:
        problems.append(detail_entry(["body", "image_url"], "Could not decode the image", "image_load_error"))
    if "duration" in body and body["duration"] not in ("5", "10"):
        problems.append(detail_entry(["body", "duration"], "Input should be '5' or '10'", "literal_error"))
    if "negative_prompt" in body and not isinstance(body["negative_prompt"], str):
        problems.append(detail_entry(["body", "negative_prompt"], "Input should be a valid string", "string_type"))
    if "cfg_scale" in body:
        cfg = body["cfg_scale"]
        if isinstance(cfg, bool) or not isinstance(cfg, int | float) or not 0 <= cfg <= 1:
            problems.append(
                detail_entry(["body", "cfg_scale"], "Input should be between 0 and 1", "less_than_equal")
            )
    return problems


def policy_detail() -> dict[str, Any]:
    """The `detail` entry of a content-policy refusal."""
    return detail_entry(
        ["body", "image_url"],
        "The content could not be processed because it contained material flagged by a content checker.",
        "content_policy_violation",
    )
