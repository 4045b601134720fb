import pytest
from hypothesis import given, strategies as st

from startbench.core.kubelet_events import FactKind, failure_hint, parse_event, parse_go_duration


@pytest.mark.parametrize("text, seconds", [
    ("1.2s", 1.2), ("850ms", 0.85), ("1m2.5s", 62.5), ("1h2m3.5s", 3723.5), ("1.2µs", 1.2e-6),
    ("1.2μs", 1.2e-6), ("3us", 3e-6), ("100ns", 1e-7), ("0s", 0.0), ("0", 0.0), ("2m", 120.0),
    ("-1.5s", -1.5), (".5s", 0.5), ("1.s", 1.0),
])
def test_go_durations(text, seconds):
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "1.2", "s", "1.2 s", "1x", "1h2", "ms", "1..2s", "abc", "1s ", " ", "+", "5"])
def test_not_go_durations(text):
    if text == "1s ":  # surrounding blanks are tolerated
        assert parse_go_duration(text) == 1.0
    else:
        assert parse_go_duration(text) is None


def test_pulled_with_wait_and_size():
    f = parse_event("Pulled", 'Successfully pulled image "127.0.0.1:5000/startbench/torch:slim" in 1.2s '
                              "(1.5s including waiting). Image size: 123456789 bytes.")
    assert f.kind is FactKind.PULLED and f.cache_hit is False
    assert f.image == "127.0.0.1:5000/startbench/torch:slim"
    assert f.pull_seconds == pytest.approx(1.2)
    assert f.pull_with_wait_seconds == pytest.approx(1.5)
    assert f.image_size_bytes == 123456789


def test_pulled_with_minutes_and_milliseconds():
    f = parse_event("Pulled", 'Successfully pulled image "x" in 1m2.5s (1m3s including waiting). Image size: 7 bytes.')
    assert (f.pull_seconds, f.pull_with_wait_seconds, f.image_size_bytes) == (62.5, 63.0, 7)
    f = parse_event("Pulled", 'Successfully pulled image "x" in 850ms (850ms including waiting)')
    assert (f.pull_seconds, f.pull_with_wait_seconds, f.image_size_bytes) == (0.85, 0.85, None)


def test_older_kubelet_pulled_message():
    f = parse_event("Pulled", 'Successfully pulled image "busybox:1.36" in 3.437211s')
    assert f.kind is FactKind.PULLED
    assert f.pull_seconds == pytest.approx(3.437211)
    assert f.pull_with_wait_seconds is None and f.image_size_bytes is None


@pytest.mark.parametrize("message", [
    'Container image "127.0.0.1:5000/startbench/torch:slim" already present on machine',
    'Container image "127.0.0.1:5000/startbench/torch:slim" already present on machine and can be accessed by the pod',
])
def test_cache_hit(message):
    f = parse_event("Pulled", message)
    assert f.kind is FactKind.ALREADY_PRESENT and f.cache_hit is True
    assert f.image == "127.0.0.1:5000/startbench/torch:slim"
    assert f.pull_seconds is None


@pytest.mark.parametrize("reason, message, kind", [
    ("Failed", 'Failed to pull image "r/x:1": rpc error: code = NotFound desc = not found', FactKind.PULL_FAILED),
    ("Failed", "Error: ErrImagePull", FactKind.PULL_FAILED),
    ("Failed", "Error: ImagePullBackOff", FactKind.PULL_BACKOFF),
    ("BackOff", 'Back-off pulling image "r/x:1"', FactKind.PULL_BACKOFF),
    ("Failed", "Error: InvalidImageName", FactKind.INVALID_IMAGE),
    ("InspectFailed", 'Failed to apply default image tag "R/X": couldn\'t parse image reference "R/X": invalid reference format',
     FactKind.INVALID_IMAGE),
    ("ErrImageNeverPull", 'Container image "x" is not present with pull policy of Never', FactKind.IMAGE_NEVER_PULL),
    ("BackOff", "Back-off restarting failed container workload in pod p_ns(uid)", FactKind.CRASH_BACKOFF),
    ("Failed", "Error: failed to create containerd task: something", FactKind.FAILED_OTHER),
])
def test_failures(reason, message, kind):
    f = parse_event(reason, message)
    assert f.kind is kind
    assert f.fatal


def test_image_named_in_failures():
    assert parse_event("Failed", 'Failed to pull image "r/x:1": boom').image == "r/x:1"


@pytest.mark.parametrize("reason, message", [
    ("Created", "Created container workload"), ("Created", "Created container: workload"),
    ("Started", "Started container workload"), ("Started", "Started container: workload"),
])
def test_container_lifecycle(reason, message):
    f = parse_event(reason, message)
    assert f.kind.value == reason and f.container == "workload" and not f.fatal


def test_scheduling_events():
    f = parse_event("Scheduled", "Successfully assigned ns1/bench-x-1 to kwok-gpu-0")
    assert f.kind is FactKind.SCHEDULED and f.node == "kwok-gpu-0"
    f = parse_event("FailedScheduling", "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes")
    assert f.kind is FactKind.FAILED_SCHEDULING and not f.fatal
    assert "spec.nodes.gpusPerPod" in failure_hint(f)
    f = parse_event("FailedScheduling", "0/2 nodes are available: 2 node(s) had untolerated taint {nvidia.com/gpu: present}.")
    assert "spec.nodes.tolerations" in failure_hint(f)


def test_pull_failure_hint_names_the_fields():
    hint = failure_hint(parse_event("Failed", "Error: ErrImagePull"))
    assert "spec.images" in hint and "spec.imagePullSecrets" in hint


# The kubelet's wording (pkg/kubelet/kubelet_pods.go getPullSecretsForPod), which the pull simulator copies.
@pytest.mark.parametrize("message, secrets", [
    ("Unable to retrieve some image pull secrets (regcred); attempting to pull the image may not succeed.",
     ("regcred",)),
    ("Unable to retrieve some image pull secrets (a, team.b-2); attempting to pull the image may not succeed.",
     ("a", "team.b-2")),
    ("Unable to retrieve some image pull secrets (); attempting to pull the image may not succeed.", ()),
    ("something else entirely", ()),
])
def test_missing_pull_secrets(message, secrets):
    f = parse_event("FailedToRetrieveImagePullSecret", message)
    assert f.kind is FactKind.MISSING_PULL_SECRETS and f.secrets == secrets
    assert not f.fatal  # the kubelet pulls anyway (a public image needs no Secret)


@given(st.text())
def test_missing_pull_secrets_never_raises(tail):
    f = parse_event("FailedToRetrieveImagePullSecret", "Unable to retrieve some image pull secrets (" + tail)
    assert all(name and "," not in name for name in f.secrets)


def test_unknown_event_is_other_and_message_is_bounded():
    f = parse_event("SandboxChanged", "x" * 5000)
    assert f.kind is FactKind.OTHER and len(f.message) == 500


@given(st.one_of(st.none(), st.text()), st.one_of(st.none(), st.text()))
def test_never_raises_on_arbitrary_text(reason, message):
    f = parse_event(reason, message)
    assert isinstance(f.kind, FactKind)
    assert f.pull_seconds is None or f.pull_seconds >= 0


@given(st.sampled_from(["Pulled", "Failed", "BackOff", "Pulling"]), st.text())
def test_never_raises_on_known_reasons_with_arbitrary_messages(reason, tail):
    parse_event(reason, 'Successfully pulled image "' + tail)
    parse_event(reason, 'Successfully pulled image "x" in ' + tail)
    parse_event(reason, tail)


@given(st.text())
def test_go_duration_never_raises(text):
    value = parse_go_duration(text)
    assert value is None or isinstance(value, float)


@given(st.integers(0, 99), st.integers(0, 59), st.integers(0, 59), st.integers(0, 999))
def test_go_duration_round_trip(h, m, s, ms):
    text = (f"{h}h" if h else "") + (f"{m}m" if h or m else "") + f"{s}.{ms:03d}s"
    assert parse_go_duration(text) == pytest.approx(h * 3600 + m * 60 + s + ms / 1000)
