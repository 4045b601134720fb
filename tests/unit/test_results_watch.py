"""`startbench results NAME --watch`: the view's numbers (core/watch.py, pure), the polling loop with a fake fetch
and sleep, and the command's exit status for CI."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from startbench.cli import main as cli
from startbench.cli import results as results_cli
from startbench.core.planner import plan
from startbench.core.spec import BenchmarkSpec
from startbench.core.status import progress_status
from startbench.core.watch import watch_view
from tests.unit.report_records import NODES, NOW, SPEC_DICT, make_records

FAILS = {"compare-naive-n0-c1": "OOMKilled"}


def states(fail=FAILS):
    """The benchmark as a poll would find it: before the plan, after 0, 5 and 10 runs, and finished."""
    final, records = make_records(fail=fail)
    spec = BenchmarkSpec.from_dict(SPEC_DICT)
    runs = plan("compare", spec, NODES)
    meta = final["metadata"]
    out = [({"metadata": meta, "spec": SPEC_DICT}, [])]
    for n in (0, 5, 10):
        status = progress_status(spec, runs, records[:n], running=2, conditions=[], generation=1, now=NOW)
        out.append(({"metadata": meta, "spec": SPEC_DICT, "status": status}, records[:n]))
    out.append((final, records))
    return out


def test_the_view_counts_runs_failures_and_the_median_first_step():
    before, empty, five, ten, final = [watch_view(*s) for s in states()]
    assert (before.phase, before.ended, before.planned, before.failed) == ("Pending", 0, None, 0)
    assert before.median_first_step_s is None and not before.finished
    assert (empty.ended, empty.planned, empty.thresholds) == (0, 16, "Unknown")
    assert (five.phase, five.ended, five.failed, five.finished) == ("Running", 5, 1, False)
    # The first five runs: one failed (no first step); of the other four, first steps at 33.1, 8.0, 8.1, 15.8 s.
    _, records = states()[2]
    firsts = sorted(r["timeToFirstStepMs"] / 1000 for r in records if "timeToFirstStepMs" in r)
    assert len(firsts) == 4 and five.median_first_step_s == pytest.approx((firsts[1] + firsts[2]) / 2)
    assert "team/compare Running: 5/16 runs ended, 1 failed, median time to first step" in five.line()
    assert (final.phase, final.ended, final.failed, final.finished) == ("PartiallyFailed", 16, 1, True)


def test_a_run_recorded_twice_counts_once():
    benchmark, records = make_records()
    assert watch_view(benchmark, records + records[:3]).ended == 16


@pytest.mark.parametrize("phase,thresholds,code", [
    ("Succeeded", "True", 0), ("PartiallyFailed", "True", 0), ("Succeeded", "Unknown", 0),
    ("Succeeded", "False", 1), ("PartiallyFailed", "False", 1), ("Failed", "Unknown", 1), ("Failed", None, 1),
])
def test_the_exit_status_fails_a_failed_benchmark_or_a_failed_threshold(phase, thresholds, code):
    conditions = [{"type": "ThresholdsMet", "status": thresholds, "message": "p99 x is 70s, limit 60s"}] \
        if thresholds else []
    view = watch_view({"metadata": {"name": "b"}, "status": {"phase": phase, "conditions": conditions}}, [])
    assert view.finished and view.exit_code == code
    if thresholds == "False":
        assert view.message == "p99 x is 70s, limit 60s"


class Poll:
    """A fake cluster: each fetch returns the next state (the last one again and again), or raises one given."""

    def __init__(self, items):
        self.items, self.calls = list(items), 0

    def __call__(self):
        item = self.items[min(self.calls, len(self.items) - 1)]
        self.calls += 1
        if isinstance(item, Exception):
            raise item
        return item


def test_the_loop_polls_until_the_benchmark_ends_and_returns_its_exit_status():
    sequence = states()
    fetch, sleeps, shown = Poll(sequence), [], []
    code, last = results_cli.watch(fetch, sleeps.append, shown.append, interval=1.5)
    assert code == 1  # the compare benchmark's p90 cold time to first step of naive exceeds its 30 s threshold
    assert last == sequence[-1] and fetch.calls == len(sequence)
    assert sleeps == [1.5] * (len(sequence) - 1)  # no sleep after the last poll
    assert [v.ended for v in shown] == [0, 0, 5, 10, 16] and shown[-1].thresholds == "False"


def test_the_loop_ends_at_once_for_a_benchmark_that_is_gone_and_retries_errors():
    assert results_cli.watch(Poll([None]), lambda s: None, lambda v: None) == (1, None)
    final = states()[-1]
    errors, sleeps = [], []
    fetch = Poll([OSError("connection reset"), OSError("connection reset"), final])
    code, last = results_cli.watch(fetch, sleeps.append, lambda v: None, 2.0,
                                   on_error=lambda err, n: errors.append(n))
    assert (code, last, errors, sleeps) == (1, final, [1, 2], [2.0, 2.0])
    down = Poll([OSError("down")])
    with pytest.raises(OSError):
        results_cli.watch(down, lambda s: None, lambda v: None)
    assert down.calls == 10  # ten failed reads in a row end the watch


def test_the_live_view_shows_the_numbers():
    view = watch_view(*states()[2])
    console = Console(file=io.StringIO(), width=100, color_system=None)
    console.print(results_cli.renderable(view))
    text = console.file.getvalue()
    assert "team/compare" in text and "Running" in text and "5/16 runs ended" in text
    assert "failed so far: 1" in text and "median time to first step:" in text and "ThresholdsMet" in text


class _IO:
    pass


def test_the_command_watches_then_prints_the_results_and_exits_for_ci(monkeypatch, capsys):
    sequence = states()
    fetch = Poll(sequence)
    monkeypatch.setattr(results_cli, "connect", lambda kubeconfig: (_IO(), "team"))
    monkeypatch.setattr(results_cli, "read_benchmark", lambda io_, namespace, name: fetch())
    monkeypatch.setattr(results_cli.time, "sleep", lambda s: None)
    assert cli.main(["results", "compare", "--watch", "--interval", "0.01"]) == 1  # a threshold failed
    out, err = capsys.readouterr()
    assert "Seconds per image, observed cache state and metric" in out  # the results table, once it ended
    # Not a terminal: one line each time the numbers change (5 polls, 5 changes), then the verdict.
    lines = err.splitlines()
    assert len(lines) == 6 and lines[1].startswith("team/compare Running: 0/16 runs ended")
    assert lines[-1].startswith("team/compare PartiallyFailed: 16/16 runs ended, 1 failed")
    assert lines[-1].endswith("exit status 1: p90 timeToFirstStep of naive (cold) is 33.271s, limit 30s")


def test_the_command_passes_when_the_benchmark_passes(monkeypatch, capsys):
    final, records = make_records()
    status = dict(final["status"], phase="Succeeded", conditions=[{"type": "ThresholdsMet", "status": "True"}])
    monkeypatch.setattr(results_cli, "connect", lambda kubeconfig: (_IO(), "team"))
    monkeypatch.setattr(results_cli, "read_benchmark", lambda io_, n, name: (dict(final, status=status), records))
    assert cli.main(["results", "compare", "--watch", "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("run,image,node") and "exit status 0" in err
    monkeypatch.setattr(results_cli, "read_benchmark", lambda io_, n, name: None)
    assert cli.main(["results", "gone", "--watch"]) == 1
    assert "no Benchmark 'gone' in namespace 'team'" in capsys.readouterr().err
