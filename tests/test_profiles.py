import pytest

from locdiff import profiles


def test_default_is_cpu_and_env_var_chooses(monkeypatch):
    monkeypatch.delenv(profiles.ENV_VAR, raising=False)
    assert profiles.get().name == "cpu"
    monkeypatch.setenv(profiles.ENV_VAR, "smoke")
    assert profiles.get().name == "smoke"
    assert profiles.get(None).name == "smoke"
    assert profiles.get("gpu").name == "gpu"  # an explicit parameter beats the environment


def test_unknown_profile_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="profile must be one of smoke, cpu, gpu"):
        profiles.get("laptop")
    monkeypatch.setenv(profiles.ENV_VAR, "tiny")
    with pytest.raises(ValueError, match="LOCDIFF_PROFILE must be one of"):
        profiles.get()


def test_smoke_is_smaller_than_cpu_smaller_than_gpu():
    s, c, g = (profiles.get(n).codec for n in ("smoke", "cpu", "gpu"))
    assert s.noise_points < c.noise_points < g.noise_points
    assert s.speed_points < c.speed_points < g.speed_points
    assert profiles.get("cpu", seed=3).seed == 3
