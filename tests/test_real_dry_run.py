"""The paper-scale path, dry run: a generated "MP16 + Im2GPS3k" data set of small images, a tiny
random CLIP saved locally, and the commands of the README section "Reproducing the paper's
tables" (profile smoke): embeddings, `locdiff train --dataset`, `locdiff evaluate --dataset`, and
`compare.run` with LocDiff and two baselines. No network. Checks that the pipeline runs and that
the numbers it reports are the ones recomputed here from the predictions (haversine oracle)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

transformers = pytest.importorskip("transformers")
import torch  # noqa: E402

from locdiff import compare, datasets, profiles  # noqa: E402

pytestmark = pytest.mark.slow

N_TRAIN, N_TEST = 240, 40
HEADER = ["IMG_ID", "AUTHOR", "LAT", "LON"]


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> Path:
    """A data set whose image colour encodes the continent-scale location (so there is signal)."""
    root = tmp_path_factory.mktemp("paper-data")
    rng = np.random.default_rng(0)
    centres = np.array([[48.0, 2.0], [35.0, 139.0], [-34.0, 151.0], [40.0, -74.0]])
    for name, n, folder in [("mp16", N_TRAIN, "mp16"), ("im2gps3k", N_TEST, "im2gps3k")]:
        rows = []
        for i in range(n):
            c = rng.integers(len(centres))
            lat, lon = centres[c] + rng.normal(0, 2.0, 2)
            colour = np.array([60 * c + 30, 255 - 60 * c, 128], np.float64)
            pixels = np.clip(colour + rng.normal(0, 25, (24, 24, 3)), 0, 255).astype(np.uint8)
            ident = f"{i // 100}/{name}_{i:04d}.jpg"
            (root / folder / "images" / ident).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / folder / "images" / ident)
            rows.append([ident, "someone", round(lat, 5), round(lon, 5)])
        pd.DataFrame(rows, columns=HEADER).to_csv(root / folder / f"{name}_places365.csv", index=False)
    torch.manual_seed(0)
    model = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
        patch_size=8, projection_dim=16)).eval()
    model.save_pretrained(root / "models" / "tiny-clip")
    path = root / "paper.json"
    path.write_text(json.dumps({
        "name": "tiny-mp16", "train_csv": "mp16/mp16_places365.csv", "train_images": "mp16/images",
        "eval_csvs": {"im2gps3k": "im2gps3k/im2gps3k_places365.csv"},
        "eval_images": {"im2gps3k": "im2gps3k/images"},
        "backbone": "./models/tiny-clip", "val_images": 40, "batch_size": 32}))
    return path


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Results, checkpoints and caches in tmp_path; no network; one thread."""
    env = {"LOCDIFF_ROOT": str(tmp_path), "LOCDIFF_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return tmp_path


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "locdiff", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy())


def test_paper_path_dry_run(spec, sandbox, haversine):
    P = profiles.get("smoke", dataset=str(spec))
    assert P.tag == "smoke-paper" and datasets.test_splits(P) == ("im2gps3k",)
    emb = datasets.embeddings(P, progress=False)["embeddings"]
    data = datasets.load(P, progress=False)
    assert {s: len(v) for s, v in emb.items()} == {"train": N_TRAIN - 40, "val": 40, "im2gps3k": N_TEST}
    assert all(len(data[s]) == len(emb[s]) for s in emb)

    run = sandbox / "run"
    t = _cli("train", "--profile", "smoke", "--dataset", spec, "--out", run)
    assert t.returncode == 0, t.stderr[-3000:]
    e = _cli("evaluate", "--checkpoint", run, "--split", "im2gps3k", "--profile", "smoke", "--dataset", spec)
    assert e.returncode == 0, e.stderr[-3000:]
    row = json.loads(e.stdout)
    assert row["split"] == "im2gps3k" and row["images"] == N_TEST and 0 <= row["acc@2500km"] <= 100
    bad = _cli("evaluate", "--checkpoint", run, "--split", "test_iid", "--profile", "smoke", "--dataset", spec)
    assert bad.returncode == 2 and "--split must be one of train, val, im2gps3k" in bad.stderr

    df, preds = compare.run(P, methods=("Classification", "Regression", "LocDiff"), n_boot=50, progress=False)
    assert (sandbox / "data" / "results" / "smoke-paper" / "methods.csv").exists()
    truth = data["im2gps3k"]
    for method in ("Classification", "Regression", "LocDiff"):
        p = preds[(method, "im2gps3k")]
        d = haversine(truth.lat, truth.lon, p["lat"], p["lon"])
        got = df.query("method == @method and split == 'im2gps3k'").set_index("metric").value
        assert got["median_km"] == pytest.approx(np.median(d), rel=1e-6)
        assert got["acc@2500km"] == pytest.approx(100 * np.mean(d <= 2500), abs=1e-9)
    # the colour carries the continent: the trained methods beat a constant guess at 2500 km
    best = df.query("split == 'im2gps3k' and metric == 'acc@2500km'").value.max()
    assert best >= 50


def test_dataset_argument_is_checked(tmp_path):
    with pytest.raises(ValueError, match="dataset must be 'bluemarble' or the path of an existing"):
        profiles.get("smoke", dataset=str(tmp_path / "nope.json"))
    assert profiles.get("smoke").tag == "smoke"


@pytest.mark.parametrize("notebook", ["02_train", "03_sampling", "04_baselines", "06_ablations"])
def test_notebooks_run_unchanged_on_real_data(spec, tmp_path_factory, monkeypatch, notebook):
    """The notebooks that take the ``dataset`` parameter run on the real data set (smoke profile);
    results and figures land under the profile tag ``smoke-paper``, never beside the benchmark's."""
    papermill = pytest.importorskip("papermill")
    root = tmp_path_factory.getbasetemp() / "nb-root"          # shared by the four, like `make figures`
    for k, v in {"LOCDIFF_ROOT": str(root), "LOCDIFF_CACHE": str(root / "cache"), "HF_HUB_OFFLINE": "1",
                 "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "LOCDIFF_PROFILE": "smoke"}.items():
        monkeypatch.setenv(k, v)
    here = Path(__file__).resolve().parents[1] / "notebooks"
    out = root / "executed" / f"{notebook}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(str(here / f"{notebook}.ipynb"), str(out), cwd=str(here), progress_bar=False,
                               parameters={"profile": "smoke", "dataset": str(spec)}, kernel_name="python3")
    figures = list((root / "figures" / "smoke-paper").glob("*.png"))
    assert figures, "the notebook saved no figure under figures/smoke-paper"
