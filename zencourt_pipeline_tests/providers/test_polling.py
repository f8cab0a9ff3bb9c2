"""Polling many tasks at once (`providers.polling`, issue 13 point 6) against the fake Runway over a
real socket: the polls overlap up to the worker count, every task is answered once, a poll's
GenerationError comes back as that task's answer, and nothing starts past the deadline."""

from __future__ import annotations

import time
import uuid
from contextlib import closing

from zencourt_pipeline.errors import ErrorCode
from zencourt_pipeline.providers.base import GenerationError, TaskRef, TaskState, TaskStatus
from zencourt_pipeline.providers.polling import poll_tasks
from zencourt_pipeline.providers.runway import RunwayGenerator
from zencourt_pipeline_tests.fakes.runway import FakeRunway


def _refs(n: int) -> list[TaskRef]:
    return [TaskRef("runway", str(uuid.uuid4()), {}) for _ in range(n)]


def test_the_polls_overlap_up_to_the_worker_count_and_each_task_is_answered_once():
    with FakeRunway() as fake, closing(RunwayGenerator(fake.api_key, base_url=fake.url)) as runway:
        fake.poll_delay = 0.4  # a slow API: one after another, 12 polls would take 4.8 s
        refs = _refs(12)
        answers = {ref.task_id: answer for ref, answer in poll_tasks(runway, refs, workers=4)}
    assert set(answers) == {ref.task_id for ref in refs} and fake.counts["poll"] == 12
    assert fake.max_polls_in_flight == 4  # four at a time: never more, and the pool was used
    # tasks the fake never created: Runway's 404, a failed task (TASK_NOT_FOUND), not an error
    assert all(isinstance(a, TaskStatus) and a.state is TaskState.FAILED for a in answers.values())


def test_a_poll_that_raises_is_that_tasks_answer_and_the_others_go_on():
    with FakeRunway() as fake, closing(RunwayGenerator(fake.api_key, base_url=fake.url)) as runway:
        fake.fail_next_gets(2, status=401)  # refused credentials: a GenerationError, not retried
        answers = list(poll_tasks(runway, _refs(5), workers=1))
    errors = [a for _, a in answers if isinstance(a, GenerationError)]
    assert len(answers) == 5 and len(errors) == 2 and {e.code for e in errors} == {ErrorCode.RUNWAY_AUTH_FAILED}


def test_no_poll_starts_past_the_deadline():
    with FakeRunway() as fake, closing(RunwayGenerator(fake.api_key, base_url=fake.url)) as runway:
        assert list(poll_tasks(runway, _refs(3), deadline=time.monotonic() - 1)) == []
        assert list(poll_tasks(runway, [], workers=4)) == []
    assert fake.counts["poll"] == 0
