"""Figure builders for the notebooks: each takes results (tables, predictions, trained models) and
returns a matplotlib figure in the house style of ``plots`` (``random_tiles`` also returns the
indices it drew); the notebook saves it with ``plots.savefig``. One module per subject:

* ``data`` (00): split maps, random tiles, the encoder's training, embeddings by continent;
* ``codec`` (01): SHDD fields, peak width, noise robustness, mixtures, speed;
* ``training`` (02): loss curves, location SNR, errors per degree band, MSE against SHDD-KL;
* ``sampling`` (03): the reverse process, the sampling knobs;
* ``tiles`` (03, 04): a tile beside a map of what the methods answered;
* ``comparison`` (04, 05): accuracy, reliability, generalization bars and error maps;
* ``ablation`` (06): the degree sweep and the coarse bands.
"""
from .ablation import coarse_bands, degree_sweep
from .codec import (codec_speed, fields_by_degree, half_width, map_axes, mixture_modes, noise_robustness,
                    relative_field)
from .comparison import accuracy_panels, error_maps, generalization_bars, reliability
from .data import embeddings_pca, encoder_training, random_tiles, split_maps
from .sampling import reverse_process, sampling_knobs
from .tiles import ambiguous_tiles, prediction_maps, samples_maps, tile_map_grid
from .training import band_errors, location_snr, loss_band_errors, loss_comparison, loss_curves, val_accuracy

__all__ = [
    "split_maps", "random_tiles", "encoder_training", "embeddings_pca",
    "map_axes", "relative_field", "fields_by_degree", "half_width", "noise_robustness", "mixture_modes", "codec_speed",
    "loss_curves", "location_snr", "band_errors", "loss_comparison", "loss_band_errors", "val_accuracy",
    "reverse_process", "sampling_knobs",
    "tile_map_grid", "samples_maps", "prediction_maps", "ambiguous_tiles",
    "accuracy_panels", "reliability", "generalization_bars", "error_maps",
    "degree_sweep", "coarse_bands",
]
