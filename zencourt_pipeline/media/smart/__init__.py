"""Smart rendering: re-encode only what a composition changes, stream-copy the rest.

`plan` (pure frame arithmetic: which spans are copied, which re-rendered, what it costs),
`splicing` (the stream-copy commands: cut at keyframes, join, decode-check), `checks` (clips
qualify, pieces match, the result decodes) and `render` (runs it all; `compose_video` falls back
to a full re-encode when it raises).
"""
