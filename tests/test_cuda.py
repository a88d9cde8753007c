"""The codec on a CUDA device gives the CPU's numbers (skipped where no GPU is present)."""
import numpy as np
import pytest
import torch

from locdiff import geo, shdd

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_encode_decode_on_cuda_match_cpu():
    lat, lon = geo.uniform_points(500, seed=3)
    lat_t = torch.tensor(lat, device="cuda")
    lon_t = torch.tensor(lon, device="cuda")
    for L in (8, 64):
        y_gpu = shdd.encode(lat_t, lon_t, L)
        assert y_gpu.device.type == "cuda" and y_gpu.dtype == torch.float64
        y_cpu = shdd.encode(lat, lon, L, dtype=torch.float64)
        assert torch.allclose(y_gpu.cpu(), y_cpu, atol=1e-10)
        la, lo, _ = shdd.decode(y_gpu.float())
        assert la.device.type == "cuda"
        d = geo.distance_km(lat, lon, la[:, 0].cpu().numpy(), lo[:, 0].cpu().numpy())
        assert np.median(d) < 0.05 and d.max() < 1.0


@cuda
def test_geo_on_cuda():
    a = torch.tensor([0.0, 48.8566], device="cuda")
    b = torch.tensor([0.0, 2.3522], device="cuda")
    d = geo.distance_km(a, b, torch.zeros(2, device="cuda"), torch.zeros(2, device="cuda"))
    assert d.device.type == "cuda"
    assert abs(float(d[0])) < 1e-6
