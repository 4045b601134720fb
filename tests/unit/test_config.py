import pytest

from startbench.runtime import config


def test_defaults_when_nothing_is_set():
    cfg = config.load({})
    assert cfg.namespaces == ()
    assert cfg.metrics_port == 9090
    assert cfg.log_level == "INFO"


def test_reads_every_variable():
    cfg = config.load({
        "STARTBENCH_NAMESPACES": "team-a, team-b",
        "STARTBENCH_METRICS_PORT": "8080",
        "STARTBENCH_METRICS_ADDRESS": "127.0.0.1",
        "STARTBENCH_DOCKER_HOST": "tcp://127.0.0.1:2375",
        "STARTBENCH_MAX_PARALLEL_PODS": "50",
        "STARTBENCH_LOG_LEVEL": "debug",
    })
    assert cfg.namespaces == ("team-a", "team-b")
    assert cfg.metrics_port == 8080
    assert cfg.metrics_address == "127.0.0.1"
    assert cfg.docker_host == "tcp://127.0.0.1:2375"
    assert cfg.max_parallel_pods == 50
    assert cfg.log_level == "DEBUG"


@pytest.mark.parametrize("env, words", [
    ({"STARTBENCH_METRICS_PORT": "http"}, ["STARTBENCH_METRICS_PORT", "integer"]),
    ({"STARTBENCH_METRICS_PORT": "70000"}, ["STARTBENCH_METRICS_PORT", "between 0 and 65535"]),
    ({"STARTBENCH_MAX_PARALLEL_PODS": "0"}, ["STARTBENCH_MAX_PARALLEL_PODS", "between 1"]),
    ({"STARTBENCH_NAMESPACES": "Team_A"}, ["STARTBENCH_NAMESPACES", "Team_A"]),
    ({"STARTBENCH_LOG_LEVEL": "loud"}, ["STARTBENCH_LOG_LEVEL", "DEBUG"]),
])
def test_bad_values_name_the_variable_and_the_fix(env, words):
    with pytest.raises(config.ConfigError) as err:
        config.load(env)
    for word in words:
        assert word in str(err.value)


def test_namespace_globs_are_accepted():
    assert config.load({"STARTBENCH_NAMESPACES": "t-*,team-?"}).namespaces == ("t-*", "team-?")


def test_build_settings_are_read_and_trimmed():
    cfg = config.load({"STARTBENCH_BUILD_REGISTRY": " 127.0.0.1:5000/team/ ", "STARTBENCH_BUILD_BASE_IMAGE": "b:1"})
    assert cfg.build_registry == "127.0.0.1:5000/team" and cfg.build_base_image == "b:1"
    assert cfg.build_ca_bundle == ""
