"""Progress in a log file: plain lines, no carriage returns, at most one per interval and the last."""

import io

from rlev.progress import LineProgress, progress


def test_a_log_file_gets_plain_lines_with_the_postfix_and_the_last_step():
    stream = io.StringIO()
    bar = progress(range(3, 10), desc="run", initial=3, total=10, every=3600, stream=stream)
    assert isinstance(bar, LineProgress)
    seen = []
    for step in bar:
        seen.append(step)
        bar.set_postfix(acc="0.50")
    assert seen == list(range(3, 10))
    text = stream.getvalue()
    assert "\r" not in text
    assert text.splitlines() == [text.splitlines()[0]] and text.startswith("run: 10/10 (100%), ")
    assert text.rstrip().endswith("acc=0.50")


def test_every_step_is_reported_when_the_interval_is_zero():
    stream = io.StringIO()
    for _ in progress(range(4), desc="sft", every=0, stream=stream):
        pass
    assert [line.split(",")[0] for line in stream.getvalue().splitlines()] == [
        "sft: 1/4 (25%)",
        "sft: 2/4 (50%)",
        "sft: 3/4 (75%)",
        "sft: 4/4 (100%)",
    ]
