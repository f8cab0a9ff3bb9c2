"""Each output published as soon as it is rendered and checked (issue 13 point 7, "latency you can
explain"): what the web app and the agent wait for is the batch's video (`video_gen_batch.video_url`,
the primary output), not the other renditions rendered after it.

`OutputPublisher` is `render_renditions`' `on_rendered` callback, called right after each output is
rendered, the primary first. It reads the file back against its platforms (`check_platforms`, what
the blocking `platform_ready` check reports) and, when every profile passes, stores the output's
objects and then its row (`OutputRepository.publish_output`: the primary's URLs become the batch's,
an `output.completed` event tells the stream), so the primary is public while the others render.
An output that fails a profile is held: it is published with the batch at its end, as every output
was before (the batch completes, `platform_ready` fails the run), so nothing advertised early can
turn out to fail the blocking check. A batch canceled meanwhile refuses the row: the objects are
taken back down and nothing more is published early (the cancel drops the rows published before it).
`batch.completed` stays the terminal event and webhook, with every output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zencourt_pipeline.db.database import AppDatabase
from zencourt_pipeline.db.records import BatchStage, Job
from zencourt_pipeline.pipeline.renditions import Rendition, check_platforms, publish_renditions, unpublish
from zencourt_pipeline.storage.base import Storage


def passes_platforms(rendition: Rendition) -> bool:
    """Whether the rendered output was checked and meets every profile its shape targets."""
    return rendition.platforms is not None and not any(rendition.platforms.values())


@dataclass
class OutputPublisher:
    """Publishes each output of one composition as it is rendered (module docstring)."""

    db: AppDatabase
    storage: Storage
    batch_id: str
    template: str
    completed: list[Job]
    narration_uri: str | None = None
    published: list[str] = field(default_factory=list)  # the outputs published early, by name, in order
    refused: bool = False  # the batch stopped taking outputs (canceled or failed meanwhile)
    uploading: bool = False  # the `uploading` stage is recorded

    def record_uploading(self) -> None:
        """The batch's `uploading` stage, once, before its first upload."""
        if not self.uploading:
            self.db.events.record_stage(self.batch_id, BatchStage.UPLOADING)
            self.uploading = True

    def __call__(self, rendition: Rendition) -> Rendition:
        """The rendered output checked, and published when it passes (with its keys and URIs)."""
        checked = check_platforms([rendition])[0]
        if self.refused or not passes_platforms(checked):
            return checked
        self.record_uploading()
        [stored] = publish_renditions(self.storage, self.batch_id, self.template, [checked], self.completed, self.narration_uri)
        if self.db.outputs.publish_output(self.batch_id, stored.row(self.template)):
            self.published.append(stored.spec.name)
            return stored
        unpublish(self.storage, [stored])  # the object went up, the row was refused: take it back down
        self.refused = True
        return checked
