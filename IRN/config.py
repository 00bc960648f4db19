"""Settings of the IRN stage (docs/method.md §1-5) with the published defaults, and the coco and demo profiles."""
from dataclasses import dataclass

from wsgcn.infra.config import CAM_EVAL_THRES, LABEL_LIST, CommonConfig, field, float_values
from wsgcn.infra.layout import WorkDir
from wsgcn.seg.dataset import DataConfig


@dataclass(frozen=True)
class IRNConfig(CommonConfig, DataConfig):
    # Lists (work_dir, voc12_root, device ... come from CommonConfig)
    train_list: str = field("Data/VOC12/train_aug.txt", "images to train the CAM network and IRNet on")
    val_list: str = field("", "images to report train_cam's validation loss on ('' = none)")
    infer_list: str = field(LABEL_LIST, "images to make and evaluate labels for")
    seed: int = field(0, "seed of weight initialisation, shuffling and augmentation", low=0)
    backbone_weights: str = field("imagenet", "ResNet-50 init of the CAM network: imagenet, a .pth path, or none",
                                  choices=("imagenet", "none"), or_path=True)
    # Class activation maps
    cam_weights_name: str = field(WorkDir.CAM_WEIGHTS, "CAM network weights, relative to work_dir")
    cam_crop_size: int = field(512, "train_cam crop size", low=1)
    cam_resize_long: tuple[int, int] = field((320, 640), "train_cam: random long side range", low=1)
    cam_batch_size: int = field(16, "train_cam batch size", low=1)
    cam_num_epoches: int = field(5, "train_cam epochs", low=1)
    cam_learning_rate: float = field(0.1, "backbone learning rate; the head trains at --cam_head_lr_mult times it",
                                     above=0)
    cam_head_lr_mult: float = field(10.0, "train_cam: the classifier's learning rate over the backbone's (IRNet: 10)",
                                    above=0)
    cam_weight_decay: float = field(1e-4, "train_cam weight decay", low=0)
    cam_optimizer: str = field("sgd", "sgd (momentum 0.9, the paper) or adamw (training from scratch)",
                               choices=("sgd", "adamw"))
    cam_frozen_bn: bool = field(True, "batch norm on running statistics (the paper); False = batch statistics")
    cam_scales: tuple[float, ...] = field((1.0, 0.5, 1.5, 2.0), "make_cam image scales", above=0)
    cam_flips: str = field("h", "make_cam: h (IRNet's: each scale's image and its horizontal flip) or hv (also "
                                "both turned upside down, 4 views: cancels the vertical offset of a network "
                                "trained from scratch whose evidence lies beside the object)", choices=("h", "hv"))
    cam_power: float = field(1.0, "make_cam: the max-normalised CAMs raised to this power (1: IRNet's); above 1 "
                                  "narrows CAMs wider than those of an ImageNet-initialised network, so that "
                                  "the background scores below keep their meaning", above=0)
    cam_eval_thres: tuple[float, ...] = field((CAM_EVAL_THRES,), "eval_cam background score; several values or a range "
                                                       "start:stop:step (e.g. 0.05:0.60:0.05, stop included) "
                                                       "print the mIoU of each and the best, chosen on the "
                                                       "ground truth", parse=float_values, low=0, high=1)
    # Inter-pixel relation labels
    conf_fg_thres: float = field(0.30, "background score for the confident-foreground map", low=0, high=1)
    conf_bg_thres: float = field(0.05, "background score for the confident-background map", low=0, high=1)
    # IRNet
    irn_weights_name: str = field("sess/res50_irn.pth", "IRNet weights, relative to work_dir")
    irn_backbone_weights: str = field("imagenet", "IRNet's frozen ResNet-50: imagenet, a .pth path, none, "
                                                  "or cam (the trained CAM network's backbone)",
                                      choices=("imagenet", "none", "cam"), or_path=True)
    irn_crop_size: int = field(512, "train_irn crop size (a multiple of 4)", low=1)
    irn_batch_size: int = field(32, "train_irn batch size", low=1)
    irn_num_epoches: int = field(3, "train_irn epochs", low=1)
    irn_learning_rate: float = field(0.1, "boundary-branch learning rate; displacement at 10x", above=0)
    irn_weight_decay: float = field(1e-4, "train_irn weight decay", low=0)
    irn_rescale: tuple[float, float] = field((0.5, 1.5), "train_irn random rescale range", above=0)
    # Random walk
    sem_seg_canvas_size: int = field(512, "make_sem_seg pads each image to this square before IRNet, as the "
                                          "original's EdgeDisplacement(crop_size=512) does; best equal to "
                                          "--irn_crop_size (larger images: rounded up to a multiple of 16)", low=1)
    beta: int = field(10, "affinity power", low=1)
    exp_times: int = field(8, "log2 of the random-walk length (T^(2^exp_times))", low=0)
    sem_seg_bg_thres: float = field(0.25, "background score of the random-walk labels", low=0, high=1)
    resume: bool = field(False, "train_cam/train_irn: continue from the state saved after the last finished "
                                "epoch (<weights>.resume.pth) instead of starting over")
    # Steps to run
    train_cam_pass: bool = field(True, "run train_cam")
    make_cam_pass: bool = field(True, "run make_cam")
    eval_cam_pass: bool = field(True, "run eval_cam")
    cam_to_ir_label_pass: bool = field(True, "run cam_to_ir_label")
    train_irn_pass: bool = field(True, "run train_irn")
    make_sem_seg_pass: bool = field(True, "run make_sem_seg_labels")
    eval_sem_seg_pass: bool = field(True, "run eval_sem_seg")


# CPU-sized settings for the embedded demo data (about 150 px images), trained from scratch:
# no ImageNet weights, so batch norm learns from batch statistics and AdamW replaces the
# SGD recipe (made for fine-tuning); IRNet's frozen backbone is the trained CAM backbone.
# The classifier learns at 3x the backbone's rate, not IRNet's 10x (made for a new head on
# pretrained features: here it loses a class in some seeds), and its CAMs, wider than an
# ImageNet network's, are raised to the 3rd power so that the paper's background scores
# (0.15 for eval_cam, 0.30/0.05, 0.25, the GCN's powers) cut nearer where they cut on IRNet's
# maps; at the 5th power a class whose CAM covers its object's core alone keeps too few
# confident pixels (above 0.79 before the power), which the IR labels' CRF then erases.
# make_cam also averages the vertical flips: such a network may put a class's evidence below
# the object, an offset IRNet's horizontal flip does not cancel (docs/demo.md).
PROFILES = {
    "paper": {},
    # MS COCO 2014 (--dataset coco14): IRN as ReCAM's COCO pipeline runs it (run_sample_coco.py),
    # the paper's settings but for the thresholds of the confident regions (VOC: 0.30 and 0.05).
    "coco": dict(conf_fg_thres=0.35, conf_bg_thres=0.1),
    "demo": dict(
        backbone_weights="none", cam_frozen_bn=False, cam_optimizer="adamw", cam_learning_rate=1e-3,
        cam_crop_size=128, cam_resize_long=(112, 176), cam_batch_size=8, cam_num_epoches=40,
        cam_head_lr_mult=3.0, cam_scales=(1.0, 0.5, 1.5), cam_flips="hv", cam_power=3.0,
        irn_backbone_weights="cam", irn_crop_size=128, sem_seg_canvas_size=128, irn_batch_size=8,
        irn_num_epoches=15, irn_rescale=(0.8, 1.2), num_workers=1,
    ),
}
