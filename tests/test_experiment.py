"""experiment.denoising_errors against closed forms: a network that knows x0 has zero error, one
that predicts zeros has MSE 1 (the latent's entries have unit mean square) at every t."""
import numpy as np
import pytest
import torch

from conftest import lookup_locdiff
from locdiff import experiment
from locdiff.latent import Latent

L = 6


def _points(n=40, seed=0):
    rng = np.random.default_rng(seed)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    lon = rng.uniform(-180, 180, n)
    return lat, lon


def _locdiff(table):
    return lookup_locdiff(table, L)


@pytest.mark.parametrize("as_tensor", [False, True])
def test_perfect_denoiser_has_zero_error_at_every_t(as_tensor):
    lat, lon = _points()
    x0 = Latent(L).encode(lat, lon)
    ld = _locdiff(x0)
    emb = np.eye(len(lat), dtype=np.float32)
    emb = torch.from_numpy(emb) if as_tensor else emb
    out = experiment.denoising_errors(ld, emb, lat, lon, timesteps=np.array([0, 500, 999]))
    assert list(out.t) == [0, 500, 999]
    np.testing.assert_allclose(out.mse, 0.0, atol=1e-10)
    np.testing.assert_allclose(out.shdd_kl, 0.0, atol=1e-5)
    # ᾱ_t of the cosine schedule (Nichol & Dhariwal 2021), s = 0.008, recomputed here
    f = lambda t: np.cos((t / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2
    np.testing.assert_allclose(out.abar, [f(t + 1) / f(0) for t in (0, 500, 999)], rtol=1e-3, atol=1e-6)


def test_zero_denoiser_has_unit_mse_and_a_uniform_density():
    lat, lon = _points(seed=1)
    ld = _locdiff(torch.zeros(len(lat), (L + 1) ** 2))
    out = experiment.denoising_errors(ld, np.eye(len(lat), dtype=np.float32), lat, lon, timesteps=(10, 900))
    np.testing.assert_allclose(out.mse, 1.0, rtol=1e-5)         # mean square of the latent: 1 for every point
    assert (out.shdd_kl > 0.1).all()                            # a peaked density against the uniform one
    np.testing.assert_allclose(out.shdd_kl.iloc[0], out.shdd_kl.iloc[1], rtol=1e-6)   # independent of t


@pytest.mark.parametrize("kwargs, words", [
    ({"timesteps": (0, 1000)}, ["timesteps", "[0, 999]"]),
    ({"timesteps": (-1,)}, ["timesteps", "[0, 999]"]),
    ({"timesteps": ()}, ["timesteps"]),
    ({"timesteps": (2.7,)}, ["timesteps", "integers"]),
    ({"lat": np.zeros((8, 5)), "lon": np.zeros((8, 5))}, ["lat", "1-D"]),
    ({"lat": 10.0, "lon": 0.0}, ["emb", "B = len(lat) = 1"]),
    ({"lat": np.full(40, 95.0)}, ["lat", "[-90, 90]"]),
    ({"emb": np.eye(39, dtype=np.float32)}, ["emb", "B = len(lat) = 40"]),
])
def test_denoising_errors_bad_inputs(kwargs, words):
    lat, lon = _points()
    ld = _locdiff(Latent(L).encode(lat, lon))
    args = {"emb": np.eye(40, dtype=np.float32), "lat": lat, "lon": lon, **kwargs}
    with pytest.raises(ValueError) as err:
        experiment.denoising_errors(ld, **args)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_point_predictions_alone_match_the_full_prediction(haversine):
    """decode_each=False skips decoding the samples, not the point rule: the same points, no sample
    keys; a denoiser that knows x0 puts every point on its truth (haversine oracle), so score's
    accuracy within 1 km is 100%."""
    lat, lon = _points(n=12, seed=2)
    ld = _locdiff(Latent(L).encode(lat, lon))
    emb = np.eye(len(lat), dtype=np.float32)
    full = ld.predict(emb, n=3, steps=4, seed=0)
    points = ld.predict(emb, n=3, steps=4, seed=0, decode_each=False)
    assert set(points) == {"lat", "lon"} and full["sample_lat"].shape == (len(lat), 3)
    np.testing.assert_array_equal(points["lat"], full["lat"])
    np.testing.assert_array_equal(points["lon"], full["lon"])
    assert haversine(lat, lon, points["lat"], points["lon"]).max() < 1.0
    assert experiment.score(ld, emb, lat, lon, n=3, steps=4)["acc@1km"] == 100.0



def test_sampling_sweep_has_one_scored_row_per_knob_value():
    """A denoiser that knows x0 is right for every knob value but w = 0 (which ignores the image)."""
    lat, lon = _points(n=6, seed=4)
    ld = _locdiff(Latent(L).encode(lat, lon))
    out = experiment.sampling_sweep(ld, np.eye(len(lat), dtype=np.float32), lat, lon, samples=(1, 2), steps=(2,),
                                    guidance=(1.0,))
    assert list(zip(out.knob, out.value)) == [("samples", 1), ("samples", 2), ("DDIM steps", 2), ("guidance", 1.0)]
    assert (out["acc@1km"] == 100.0).all()
