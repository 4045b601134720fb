import json

import pytest
from hypothesis import given, strategies as st

from startbench.core.kubelet_events import parse_event
from startbench.runtime.metrics import PHASES
from startbench.core.timeline import (BOUNDARIES, Observations, build_timeline, observe_event, observe_pod,
                                 read_report)
from startbench.workload import report as report_mod

T0 = 1_764_000_000_000.0


def pod(scheduled=False, waiting=None, running=False, terminated=None, phase="Pending", reason=None, node=None):
    status = {"phase": phase, "conditions": []}
    if scheduled:
        status["conditions"].append({"type": "PodScheduled", "status": "True"})
    cs = {"name": "workload", "state": {}, "imageID": "127.0.0.1:5000/startbench/pytorch@sha256:" + "a" * 64}
    if waiting:
        cs["state"]["waiting"] = {"reason": waiting, "message": f"{waiting} happened"}
    if running:
        cs["state"]["running"] = {"startedAt": "2025-11-24T16:00:05Z"}
    if terminated:
        cs["state"]["terminated"] = {"startedAt": "2025-11-24T16:00:05Z", **terminated}
    status["containerStatuses"] = [cs]
    if reason:
        status["reason"] = reason
    return {"spec": {"nodeName": node} if node else {}, "status": status}


def report_text(**marks):
    return json.dumps({"schema": "startbench.dev/workload-report/v1", "ok": True, "marks_ms": marks})


def full_run(hit=False):
    obs = Observations(created_ms=T0)
    obs = observe_pod(obs, pod(scheduled=True, node="kwok-gpu-0"), T0 + 20)
    obs = observe_event(obs, parse_event("Scheduled", "Successfully assigned ns/p to kwok-gpu-0"), T0 + 25)
    if hit:
        obs = observe_event(obs, parse_event("Pulled", 'Container image "x" already present on machine'), T0 + 300)
    else:
        obs = observe_event(obs, parse_event("Pulling", 'Pulling image "x"'), T0 + 300)
        obs = observe_event(obs, parse_event(
            "Pulled", 'Successfully pulled image "x" in 10s (12s including waiting). Image size: 1000 bytes.'),
            T0 + 12_300)
    base = T0 + (700 if hit else 12_700)
    obs = observe_pod(obs, pod(scheduled=True, running=True, phase="Running"), base)
    rep = read_report(report_text(process_start=base - 50, interpreter_ready=base, framework_imported=base + 3000,
                                  device_ready=base + 4000, first_step=base + 6000))
    return obs, rep


def test_cold_run_phases_and_sources():
    obs, rep = full_run()
    tl = build_timeline(obs, rep)
    got = {p.name: (p.ms, p.source) for p in tl.phases}
    assert got == {
        "scheduling": (20.0, "watch:PodScheduled"),
        # pull start = Pulled arrival (12300) - 10 s: the 2 s waiting behind other pulls stays here
        "waiting_to_pull": (2280.0, "event:Pulled-duration"),
        "pulling": (10_000.0, "event:Pulled"),
        # the container's own process start (50 ms before the watch saw it running) ends create_start
        "create_start": (350.0, "report:process_start"),
        "imports": (3050.0, "report:framework_imported"),
        "device_init": (1000.0, "report:device_ready"),
        "first_step": (2000.0, "report:first_step"),
    }
    assert tl.total_ms == sum(ms for ms, _ in got.values()) == 18_700.0
    assert tl.time_to_first_step_ms == 18_700.0
    assert tl.cache_observed == "miss" and tl.end == "first_step" and tl.clamps == ()
    assert obs.pull_with_wait_seconds == 12.0 and obs.image_size_bytes == 1000 and obs.node == "kwok-gpu-0"


def test_cache_hit_has_zero_pulling():
    obs, rep = full_run(hit=True)
    tl = build_timeline(obs, rep)
    phases = {p.name: p for p in tl.phases}
    assert tl.cache_observed == "hit"
    assert phases["pulling"].ms == 0 and phases["pulling"].source == "event:Pulled"
    assert phases["waiting_to_pull"].source == "event:Pulled-present"


def test_no_pull_events_merges_phases_and_says_so():
    obs = observe_pod(Observations(created_ms=T0), pod(scheduled=True), T0 + 10)
    obs = observe_pod(obs, pod(scheduled=True, running=True), T0 + 5000)
    tl = build_timeline(obs)
    phases = {p.name: p for p in tl.phases}
    assert phases["waiting_to_pull"].ms == 4990 and phases["waiting_to_pull"].covers == (
        "waiting_to_pull", "pulling", "create_start")
    assert not phases["waiting_to_pull"].exact
    assert phases["pulling"].ms is None and phases["create_start"].ms is None
    assert tl.end == "container_started" and tl.time_to_first_step_ms is None
    assert tl.cache_observed == "unknown"
    assert tl.phase_seconds() == {"scheduling": pytest.approx(0.01)}
    assert tl.to_dict()["phases"]["waiting_to_pull"]["covers"] == ["waiting_to_pull", "pulling", "create_start"]


def test_clock_skew_is_corrected_to_the_nearest_bound_then_clamped_and_both_are_recorded():
    obs, _ = full_run()
    # The pod's clock is 20 s behind the operator's: every report mark falls before the pod was even created.
    base = T0 + 12_700 - 20_000
    rep = read_report(report_text(framework_imported=base + 3000, device_ready=base + 4000, first_step=base + 6000))
    tl = build_timeline(obs, rep)
    # No mark can precede the create call: the marks move 4.3 s later, to that bound (the least shift the facts
    # demand). The block still starts before the container did (as the watch saw it): it moves up as one, so its
    # own durations stay exact; both moves are recorded.
    assert tl.clock is not None and tl.clock.corrected and tl.clock.offset_ms == pytest.approx(4300)
    assert tl.to_dict()["clock"] == {"offsetMs": 4300.0, "lowerMs": 4300.0, "upperMs": None, "corrected": True}
    assert all(p.ms is None or p.ms >= 0 for p in tl.phases)
    assert [c.boundary for c in tl.clamps] == ["framework_imported"]
    assert tl.clamps[0].by_ms == pytest.approx(12_700)
    assert tl.to_dict()["clamps"][0]["boundary"] == "framework_imported"
    phases = {p.name: p.ms for p in tl.phases}
    assert (phases["device_init"], phases["first_step"]) == (pytest.approx(1000), pytest.approx(2000))


def _skewed_run(skew_ms, start_after_create_ms=700, watch_lag_ms=300):
    """A warm run whose pod clock is `skew_ms` ahead of the operator's (negative: behind)."""
    obs = Observations(created_ms=T0)
    obs = observe_pod(obs, pod(scheduled=True, node="n"), T0 + 20)
    obs = observe_event(obs, parse_event("Pulled", 'Container image "x" already present on machine'), T0 + 300)
    start = T0 + start_after_create_ms  # the true process start, on the operator's clock
    obs = observe_pod(obs, pod(scheduled=True, running=True, phase="Running"), start + watch_lag_ms)
    pod_clock = start + skew_ms
    marks = dict(process_start=pod_clock, interpreter_ready=pod_clock + 100, framework_imported=pod_clock + 500,
                 device_ready=pod_clock + 600, first_step=pod_clock + 2600)
    obs = observe_pod(obs, pod(scheduled=True, terminated={"exitCode": 0, "reason": "Completed"}, phase="Succeeded"),
                      start + 3000 + watch_lag_ms)
    return build_timeline(obs, read_report(report_text(**marks)))


@pytest.mark.parametrize("skew_ms", [2000, -2000, 50, -50, 0])
def test_pod_clocks_off_by_seconds_are_detected_and_corrected_and_small_offsets_stay_within_the_bounds(skew_ms):
    tl = _skewed_run(skew_ms)
    check = tl.clock
    # The bounds always hold the true offset (operator - pod = -skew).
    assert check.lower_ms <= -skew_ms <= check.upper_ms
    if abs(skew_ms) >= 1000:  # more than the facts allow: detected, and moved toward the truth
        assert check.corrected and check.offset_ms * -skew_ms > 0
        assert abs(check.offset_ms + skew_ms) <= check.upper_ms - check.lower_ms
    else:  # within what the watch's lag can explain: left alone, never invented
        assert not check.corrected and check.offset_ms == 0
    phases = {p.name: p.ms for p in tl.phases}
    assert all(ms is None or ms >= 0 for ms in phases.values())
    # Shifted to the nearest bound, a clock far behind may still start the process before the kubelet's pull
    # event arrived: that remainder is clamped, and said (never a negative phase).
    assert not tl.clamps or (skew_ms < 0 and [c.boundary for c in tl.clamps] == ["container_started"])
    assert tl.total_ms == pytest.approx(sum(ms for ms in phases.values() if ms is not None))
    # imports and the steps after are the pod's own durations, whatever its clock says.
    assert phases["imports"] == pytest.approx(500) and phases["first_step"] == pytest.approx(2000)


@given(skew=st.floats(-60_000, 60_000), start_after=st.floats(0, 30_000), lag=st.floats(0, 2000))
def test_corrected_timelines_never_go_backwards_and_add_up(skew, start_after, lag):
    tl = _skewed_run(skew, start_after, lag)
    assert tl.clock.lower_ms - 0.01 <= -skew <= tl.clock.upper_ms + 0.01  # epoch ms: floats to ~0.0002 ms
    assert all(p.ms is None or p.ms >= 0 for p in tl.phases)
    assert tl.total_ms == pytest.approx(sum(p.ms for p in tl.phases if p.ms is not None))


def test_failed_and_terminated_observations():
    obs = Observations(created_ms=T0)
    obs = observe_event(obs, parse_event("Failed", 'Failed to pull image "x": not found'), T0 + 100)
    obs = observe_event(obs, parse_event("Failed", "Error: ErrImagePull"), T0 + 101)
    obs = observe_pod(obs, pod(scheduled=True, waiting="ErrImagePull"), T0 + 102)
    assert obs.fatal_event.startswith("ErrImagePull: Failed to pull image")
    assert obs.waiting_reason == "ErrImagePull"
    done = observe_pod(Observations(created_ms=T0), pod(scheduled=True, terminated={
        "exitCode": 137, "reason": "OOMKilled", "message": "", "finishedAt": "2025-11-24T16:00:09Z"},
        phase="Failed"), T0 + 9000)
    assert (done.exit_code, done.terminated_reason, done.pod_phase) == (137, "OOMKilled", "Failed")
    assert done.running_ms is None and done.terminated_ms == T0 + 9000
    assert done.started_at_ms == pytest.approx(1764000005000.0)


def test_observations_round_trip():
    obs, _ = full_run()
    assert Observations.from_dict(json.loads(json.dumps(obs.to_dict()))) == obs
    assert Observations.from_dict({"created_ms": 1.0, "unknown_field": 3}) == Observations(created_ms=1.0)


def test_first_arrival_wins():
    obs = observe_pod(Observations(created_ms=T0), pod(scheduled=True), T0 + 10)
    obs = observe_pod(obs, pod(scheduled=True), T0 + 99)
    assert obs.scheduled_ms == T0 + 10


def test_report_reading_is_tolerant():
    assert not read_report(None).present and "no termination message" in read_report("").problem
    view = read_report("garbage\n" + report_text(first_step=5.0, device_ready="x"))
    assert view.present and not view.valid and view.problem
    assert view.marks_ms == {"first_step": 5.0}
    assert not read_report("just a crash log\nTraceback ...").present


def test_valid_report_from_the_workload_module():
    marks = {"process_start": T0, "interpreter_ready": T0 + 10, "framework_imported": T0 + 20,
             "device_ready": T0 + 30, "model_built": T0 + 40, "data_ready": T0 + 50, "first_step": T0 + 60,
             "steady_end": T0 + 70}
    metrics = {k: None for k in report_mod.METRIC_KEYS}
    metrics.update(samples_per_s=10.0)
    doc = {"schema": "startbench.dev/workload-report/v1", "ok": True, "failed_phase": None, "error": None,
           "framework": "pytorch", "model": "resnet18", "device": {"kind": "cpu", "name": "cpu", "count": 1},
           "config": {"steps": 15, "batch_size": 32, "precision": "fp32", "image_size": 224, "data": "synthetic"},
           "marks_ms": marks, "metrics": metrics}
    report_mod.parse_report(json.dumps(doc))  # the fixture is a valid report by the workload's own validator
    view = read_report(json.dumps(doc))
    assert view.valid and view.ok and view.metrics["samples_per_s"] == 10.0 and view.marks_ms == marks


maybe_ms = st.one_of(st.none(), st.floats(min_value=T0 - 1e7, max_value=T0 + 1e7))


@given(st.lists(maybe_ms, min_size=9, max_size=9), st.one_of(st.none(), st.booleans()),
       st.one_of(st.none(), st.floats(min_value=0, max_value=1e5)))
def test_phases_never_negative_and_add_up(values, hit, pull_seconds):
    obs = Observations(created_ms=T0, scheduled_ms=values[0], scheduled_event_ms=values[1], pulling_ms=values[2],
                       pulled_ms=values[3], cache_hit=hit if values[3] is not None else None,
                       pull_seconds=pull_seconds, running_ms=values[4], started_event_ms=values[5])
    marks = {m: v for m, v in zip(("framework_imported", "device_ready", "first_step"), values[6:]) if v is not None}
    tl = build_timeline(obs, read_report(report_text(**marks)) if marks else None)
    measured = [p.ms for p in tl.phases if p.ms is not None]
    assert all(ms >= 0 for ms in measured)
    assert sum(measured) == pytest.approx(tl.total_ms, abs=1e-6)
    assert tl.total_ms >= 0 and tl.end in BOUNDARIES
    assert [p.name for p in tl.phases] == list(PHASES)
    covered = [name for p in tl.phases if p.ms is not None for name in p.covers]
    assert len(covered) == len(set(covered))  # no phase counted twice


@given(st.permutations(range(6)))
def test_any_arrival_order_gives_valid_phases(order):
    events = [
        lambda o: observe_pod(o, pod(scheduled=True), T0 + 10),
        lambda o: observe_event(o, parse_event("Pulling", 'Pulling image "x"'), T0 + 40),
        lambda o: observe_event(o, parse_event("Pulled", 'Successfully pulled image "x" in 1s'), T0 + 1100),
        lambda o: observe_event(o, parse_event("Started", "Started container workload"), T0 + 1300),
        lambda o: observe_pod(o, pod(scheduled=True, running=True), T0 + 1250),
        lambda o: observe_event(o, parse_event("Scheduled", "Successfully assigned a/b to n"), T0 + 12),
    ]
    obs = Observations(created_ms=T0)
    for i in order:
        obs = events[i](obs)
    tl = build_timeline(obs)
    assert tl.total_ms == 1250 and tl.cache_observed == "miss"
    assert all(p.ms is None or p.ms >= 0 for p in tl.phases)


def test_container_start_falls_back_to_the_watch_without_a_process_start_mark():
    obs, _ = full_run()
    base = T0 + 12_700
    rep = read_report(report_text(interpreter_ready=base, framework_imported=base + 3000, device_ready=base + 4000,
                                  first_step=base + 6000))
    phases = {p.name: (p.ms, p.source) for p in build_timeline(obs, rep).phases}
    assert phases["create_start"] == (400.0, "watch:ContainerRunning")
    assert phases["imports"] == (3000.0, "report:framework_imported")
