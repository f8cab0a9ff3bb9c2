"""What the tests' batches ask to be rendered.

Most tests exercise a stage, not the renditions, so their batches ask for one 720p landscape output
(one render at the old default size) instead of `DEFAULT_OUTPUTS` (four 1080p files, about nine
times the compose work). Tests of renditions and of the default request pass `outputs=None`, which
stores no request and so gets `DEFAULT_OUTPUTS`, or a list of their own.
"""

from zencourt_pipeline.domain import OutputShape, OutputSpec, outputs_json


def one_output(width: int = 1280, height: int = 720, shape: OutputShape = OutputShape.LANDSCAPE) -> str:
    """The stored `outputs` request of one branded output of this size."""
    return outputs_json([OutputSpec(shape=shape, width=width, height=height, branded=True)])


ONE_OUTPUT_JSON = one_output()
