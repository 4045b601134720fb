"""Phase marks: order, wall/monotonic arithmetic, the process's own start time, and phase durations."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from startbench.workload.marks import MARKS, PHASES, Marks, check_marks, next_mark, phase_durations_ms, process_start_epoch_ms


def test_marks_follow_the_monotonic_clock_from_one_wall_anchor():
    anchor = (1_700_000_000_000_000_000, 5_000_000_000)  # wall ns, monotonic ns
    m = Marks(anchor, process_start_ms=1_700_000_000_000.0 - 250.0)
    m.mark("interpreter_ready")
    m.mark("framework_imported", mono_ns=5_000_000_000 + 1_234_500_000)
    m.mark("device_ready", mono_ns=5_000_000_000 + 1_300_000_000)
    assert m.wall_ms["interpreter_ready"] == 1_700_000_000_000.0
    assert m.wall_ms["framework_imported"] == pytest.approx(1_700_000_001_234.5)
    assert m.wall_ms["device_ready"] - m.wall_ms["framework_imported"] == pytest.approx(65.5)
    assert m.elapsed_ms("device_ready") == pytest.approx(250.0 + 1300.0)


@pytest.mark.parametrize("skew_ms", [2000.0, -2000.0, 50.0, -50.0])
def test_a_skewed_clock_moves_every_mark_and_keeps_every_duration(skew_ms):
    anchor = (1_700_000_000_000_000_000, 5_000_000_000)
    plain, skewed = Marks(anchor, process_start_ms=1_699_999_999_750.0), Marks(anchor, process_start_ms=1_699_999_999_750.0)
    for m in (plain, skewed):
        m.mark("interpreter_ready")
    skewed.skew(skew_ms)  # after the first marks, as the runner does once its arguments are read
    for m in (plain, skewed):
        m.mark("framework_imported", mono_ns=5_000_000_000 + 1_234_500_000)
    assert {k: v - plain.wall_ms[k] for k, v in skewed.wall_ms.items()} == {k: pytest.approx(skew_ms) for k in plain.wall_ms}
    assert phase_durations_ms(skewed.wall_ms) == pytest.approx(phase_durations_ms(plain.wall_ms))


def test_marks_must_come_in_order_and_once():
    m = Marks(process_start_ms=0.0)
    m.mark("interpreter_ready")
    with pytest.raises(ValueError, match="out of order.*'framework_imported'"):
        m.mark("device_ready")
    m.mark("framework_imported")
    with pytest.raises(ValueError, match="out of order"):
        m.mark("framework_imported")
    with pytest.raises(ValueError, match="unknown mark"):
        m.mark("warmup")


def test_process_start_never_follows_the_anchor():
    now_ms = time.time() * 1000
    m = Marks((int(now_ms * 1e6), time.monotonic_ns()), process_start_ms=now_ms + 40)  # tick rounding
    assert m.wall_ms["process_start"] <= now_ms


def test_process_start_of_a_fresh_process_is_when_it_was_spawned():
    before = time.time() * 1000
    out = subprocess.run([sys.executable, "-c", "import time; time.sleep(0.3);"
                          "from startbench.workload.marks import process_start_epoch_ms as p; print(p())"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    after = time.time() * 1000
    start = float(out)
    # The child slept 300 ms before reading its start: a clock-now fallback would land after before + 300.
    assert before - 20 <= start <= before + 250 < after


def test_own_process_start_is_in_the_past():
    start = process_start_epoch_ms()
    assert start is not None and start < time.time() * 1000


def test_next_mark_skips_an_unknown_process_start():
    assert next_mark({}) == "interpreter_ready"
    assert next_mark({"interpreter_ready": 1.0}) == "framework_imported"
    assert next_mark({name: float(i) for i, name in enumerate(MARKS)}) is None
    assert next_mark({name: float(i) for i, name in enumerate(MARKS[1:])}) is None


def test_check_marks_finds_gaps_order_and_junk():
    assert check_marks({"process_start": 1.0, "interpreter_ready": 2.0, "framework_imported": 2.0}) == []
    problems = check_marks({"interpreter_ready": 5.0, "device_ready": 4.0, "later": 1.0, "first_step": -1})
    text = "\n".join(problems)
    assert "unknown mark 'later'" in text
    assert "'device_ready' is present but the earlier mark 'framework_imported' is absent" in text
    assert "earlier than mark 'interpreter_ready'" in text
    assert "non-negative" in text


def test_phases_chain_every_mark_once():
    assert [p[1] for p in PHASES] == list(MARKS[:-1])
    assert [p[2] for p in PHASES] == list(MARKS[1:])


@given(st.integers(1, len(MARKS)), st.lists(st.floats(0, 1e6, allow_nan=False), min_size=len(MARKS), max_size=len(MARKS)))
def test_phase_durations_telescope_to_the_span_of_the_marks(count, gaps):
    marks, t = {}, 1.7e12
    for name, gap in zip(MARKS[:count], gaps):
        t += gap
        marks[name] = t
    assert check_marks(marks) == []
    durations = phase_durations_ms(marks)
    assert len(durations) == count - 1
    assert all(d >= 0 for d in durations.values())
    names = list(marks)
    assert sum(durations.values()) == pytest.approx(marks[names[-1]] - marks[names[0]], rel=1e-12, abs=1e-3)
