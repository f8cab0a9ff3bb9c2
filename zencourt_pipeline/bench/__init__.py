"""Media engine benchmarks: `make bench` (`python -m zencourt_pipeline.bench`).

Everything runs in this one Python process (ffmpeg runs as its child processes); the inputs are
generated in a temporary directory; one `name: value` line per figure goes to stdout (progress
notes go to stderr). `ZENCOURT_BENCH_QUICK=1` runs the same steps on tiny inputs (a smoke test:
the figures then mean nothing). The machine is shared, so runs of ours and of the references are
interleaved (rotating the order each round) and medians of `repeats` (3) rounds are reported;
ratios are medians of per-round ratios. `load_avg_1m_start/end` show how busy the machine was;
because other work on the machine inflates wall times at random, `*_cpu_s` (user + system time of
the ffmpeg children and this process) and `*_ratio_vs_ref_cpu` are printed next to the wall times.

Inputs (`inputs.py`): six 5 s 1920x1080 30 fps H.264 clips tagged BT.709 (pans over detailed
noisy stills, animated test patterns with sensor-like noise, Game of Life), x264 ultrafast CRF 18.

Normalize
  normalize_many_6_clips_s   our `normalize_many` on the six sources -> 1280x720 (parallel, up to
                             the core count); these are the composition inputs below.
  normalize_s                our `normalize_clip` on one source (probe, one ffmpeg pass, probe).
  normalize_ref_s            the bare reference on the same source: `-vf fps=30,scale=1280:720:
                             force_original_aspect_ratio=increase,crop=1280:720,setsar=1,format=
                             yuv420p -t 5` with the same x264 settings (veryfast CRF 20, High,
                             keyframe every second) and `+faststart`.
  normalize_ratio_vs_ref     ours / reference (one clip each, serial; median of per-round ratios).

Compose (the bench timeline): the six normalized clips, 0.5 s `fade` crossfades (27.5 s), a 2 s
title card over the first clip, a 1.5 s room caption over the first seconds of each clip (all
faded in/out over 0.4 s), 0.5 s fade from black, 1 s fade to black, the bundled music bed with
volume and fades; output H.264 High veryfast CRF 23, yuv420p, keyframe every second, AAC 128k.
  compose_ref_ffmpeg_720p_s  the reference (`references.compose_reference_args`): one hand-written
                             ffmpeg graph doing the same work: scale+fps+format per clip, chained
                             `xfade` at the same offsets, each overlay PNG `-loop 1`ed for its span,
                             alpha-faded, shifted and `overlay`ed, fade in/out, music atrim/volume/
                             afade, the same encoder settings.
  compose_720p_s             our `compose_video(strategy="full")`: our one-graph composition
                             (graphs.compose_filter) plus planning (Pillow overlays), probes, the
                             frame-count check and the thumbnail. compose_ratio_vs_ref = ours / ref.
  compose_smart_720p_s       our `compose_video(strategy="smart")`: untouched whole GOPs of the
                             clips stream-copied, the rest rendered in windows by the same graph,
                             joined by the concat demuxer with the music encoded in that pass, then
                             the index check and a full decode-to-null check (`-xerror`), frame
                             count, thumbnail. compose_smart_ratio_vs_ref = smart / ref.
  compose_smart_copied_share share of output frames stream-copied on this timeline (with 5 s clips,
                             1 s GOPs, crossfades and captions on every clip, about a third);
                             compose_smart_estimated_cost is the planner's estimate of smart / full
                             and compose_auto_uses_smart whether strategy="auto" picks smart here.
  compose_smart_{pieces,join,check}_s  where the smart time goes: rendering windows + cutting the
                             copied spans + encoding the music (in parallel), the stream-copy join,
                             the validation (index + full decode).
  compose_smart_decodes_clean / _frames_match_full / _duration_error_s  the acceptance checks on
                             the smart output, made separately after the timed runs: a plain
                             `ffmpeg -v error -xerror -i out -f null -` prints nothing and exits 0,
                             its frame count equals the full render's, its length the planned one.
  compose_moviepy_720p_s     the naive moviepy 2 composition (`references.moviepy_compose`):
                             concatenate_videoclips with CrossFadeIn and padding -0.5, TextClip title
                             and captions composited, fades, music, write_videofile(libx264,
                             veryfast). Run once. compose_ratio_vs_moviepy = moviepy / ours (full).
  *_peak_rss_mb              peak RSS of this process plus all its children, sampled from /proc
                             every 20 ms.

Memory (`vertical.py`): compose_1080x1920_60s_* composes twelve 1080x1920 normalized clips (11 x 5.5 s + 5 s,
0.5 s crossfades = 60 s; three distinct clips repeated) with the same template and the default
strategy (auto). compose_full_1080x1920_20_5s_* composes the first four of them with
strategy="full" (the fallback): at this size it renders windows of ~2 clips one after the other
instead of one graph holding every decoder, so its peak does not grow with the timeline's length.

Renditions (`outputs.py`, issue 15; its docstring has the details): the default request's four
outputs (16:9 and 9:16 at 1080p, branded and unbranded) made by `pipeline.renditions.render_renditions`
from six 1280x720 clips with the `showcase` template and an agent name. outputs_4_ratio_vs_one_full =
those four / one full render of the primary (outputs_4_cpu_ratio_vs_one_full: in CPU seconds);
unbranded_ratio_vs_full = the 16:9 unbranded cut as
`render_renditions` makes it / a full render of it; outputs_4_60s_peak_rss_mb = the four outputs of
12 x 5 s clips. `python -m zencourt_pipeline.bench.outputs` runs this section alone.

Local generator: local_generator_5s_720p_s renders a 5 s 1280x720 Ken Burns clip from a
4000x3000 JPEG with `kenburns.render_ken_burns`; local_generator_realtime_factor = 5 s / that.

Capacity (`capacity.py`, issue 13 point 5; its docstring has every line): one 6 x 5 s batch of the
default request through the pipeline's stage functions on the embedded defaults, CPU-seconds per
stage (capacity_cpu_s_intake, _generate_local, _collect, _normalize, _compose, _upload, _run_startup),
capacity_cpu_s_batch (without the local renders: paid providers render remotely) and
capacity_batches_per_core_hour; docs/scaling.md turns them into the capacity table.

Sensors (`sensors.py`): sensor_tick_10000_open_batches_s is the slowest median tick of the two
sensors (the completions sensor polls the providers first: the reconciler's work) with 10,000 open
batches in a fresh PostgreSQL database (300 in quick mode), each sensor also on its own line
(sensor_tick_<name>_s). It is the tick itself; the daemon's run creation
for the at most 25 runs a tick requests comes after it.
"""
