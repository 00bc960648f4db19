"""Settings of the GCN stage (docs/method.md §6-8) with the published defaults, shared by
``GCN/make_dataset.py``, ``GCN/train.py`` and ``GCN/CRF.py`` (each reads what it needs)."""
from dataclasses import dataclass

from GCN.graph import GRAPHS
from wsgcn.infra.config import LABEL_LIST, CommonConfig, field
from wsgcn.seg.crf import CRFParams
from wsgcn.seg.dataset import DataConfig


@dataclass(frozen=True)
class GCNConfig(CommonConfig, DataConfig):
    # The list (work_dir, voc12_root, device ... come from CommonConfig)
    train_list: str = field(LABEL_LIST, "images to label (the flag keeps the original's name, "
                                                    "though no network trains on them but each image's own GCN)")
    seed: int = field(42, "global seed; each image's GCN is seeded from it and the image name", low=0)
    # §6 partial pseudo labels
    confident_ratio: float = field(0.3, "fraction of each class's CAM scores above 0.1 kept as confident",
                                   above=0, high=1)
    score_threshold: float = field(0.8, "minimum CRF score of a labelled node; also the confident-background "
                                        "CAM score", low=0, high=1)
    alpha_low: float = field(4.0, "background power for confident foreground", above=0)
    alpha_high: float = field(32.0, "background power for confident background", above=0)
    partial_crf_gauss_sxy: float = field(4.0, "partial labels' CRF: Gaussian sxy", above=0)
    partial_crf_gauss_compat: float = field(3.0, "partial labels' CRF: Gaussian compat", above=0)
    partial_crf_bilateral_sxy: float = field(20.0, "partial labels' CRF: bilateral sxy", above=0)
    partial_crf_bilateral_srgb: float = field(3.0, "partial labels' CRF: bilateral srgb", above=0)
    partial_crf_bilateral_compat: float = field(10.0, "partial labels' CRF: bilateral compat", above=0)
    partial_crf_iterations: int = field(10, "partial labels' CRF: mean-field iterations", low=1)
    # §7 one GCN per image
    max_epoch: int = field(250, "full-batch training epochs per image", low=1)
    lr: float = field(0.01, "Adam learning rate", above=0)
    weight_decay: float = field(5e-4, "Adam weight decay", low=0)
    num_hid_unit: int = field(16, "hidden units", low=1)
    drop_rate: float = field(0.3, "dropout after the first layer", low=0, below=1)
    use_lap: bool = field(True, "add the colour/position Laplacian term")
    use_ent: bool = field(True, "add the entropy term on unlabelled nodes")
    ent_weight: float = field(10.0, "weight of the entropy term", low=0)
    lap_weight: float = field(0.01, "weight of the Laplacian term", low=0)
    lap_rgb_scale: float = field(12.0, "Laplacian graph: divisor of the squared colour distance", above=0)
    lap_xy_scale: float = field(20.0, "Laplacian graph: divisor of the squared grid distance", above=0)
    beta: int = field(10, "affinity power of the transition matrix", low=1)
    exp_times: int = field(8, "log2 of the walk length: the graph is built from T^(2^exp_times)", low=0)
    graph: str = field("lowmem", "the GCN's graph M: lowmem (rank-limited operator, O(N) memory) or dense "
                                 "(exact, N x N in memory)", choices=tuple(GRAPHS))
    graph_rank: int = field(64, "lowmem: eigenpairs kept of the non-isolated nodes' affinity", low=1)
    graph_isolation: float = field(0.01, "lowmem: nodes with less off-diagonal affinity mass are split off", low=0)
    batch_images: int = field(0, "images whose GCNs train together in one set of launches, each with "
                                 "its own model and seed (0: 32 on CUDA, 1 on the CPU)", low=0)
    outputs: str = field("auto", "the GCN's outputs: all (one per class of the data set, the original's 21 on "
                                 "VOC), padded (the image's classes first, then absent-class outputs up to the "
                                 "original's 21, so that every loss term weighs as on VOC whatever the data set's "
                                 "class count) or image (background and the image's own classes only); auto: all "
                                 "for voc12, padded for the others", choices=("auto", "all", "padded", "image"))
    restrict_to_image_classes: bool = field(True, "predict only background and the image's classes "
                                                  "(False: the original argmax over all 21)")
    # §8 dense CRF refinement
    crf_gauss_sxy: float = field(3.0, "CRF.py: Gaussian sxy", above=0)
    crf_gauss_compat: float = field(3.0, "CRF.py: Gaussian compat", above=0)
    crf_bilateral_sxy: float = field(50.0, "CRF.py: bilateral sxy", above=0)
    crf_bilateral_srgb: float = field(5.0, "CRF.py: bilateral srgb", above=0)
    crf_bilateral_compat: float = field(3.0, "CRF.py: bilateral compat", above=0)
    crf_iterations: int = field(10, "CRF.py: mean-field iterations", low=1)

    @property
    def partial_crf(self):
        return CRFParams(self.partial_crf_gauss_sxy, self.partial_crf_gauss_compat, self.partial_crf_bilateral_sxy,
                         self.partial_crf_bilateral_srgb, self.partial_crf_bilateral_compat,
                         self.partial_crf_iterations)

    @property
    def refine_crf(self):
        return CRFParams(self.crf_gauss_sxy, self.crf_gauss_compat, self.crf_bilateral_sxy, self.crf_bilateral_srgb,
                         self.crf_bilateral_compat, self.crf_iterations)


# The GCN stage is small per image; the demo changes nothing but the number of workers, and COCO
# takes the paper's settings (its thresholds come from the IRN stage's profile).
PROFILES = {"paper": {}, "coco": {}, "demo": dict(num_workers=1)}
