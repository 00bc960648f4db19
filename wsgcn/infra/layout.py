"""Where every step reads and writes, all under one work directory (``--work_dir``).

    sess/res50_cam.pth, sess/res50_irn.pth    network weights
    IRN4GCN/CAM/<name>.npz                    keys (K,) int64, cam (K,h,w), high_res (K,H,W) float32
    IRN4GCN/IR_LABEL/<name>.png               inter-pixel relation labels (255 = unsure)
    IRN4GCN/SEM_SEG/<name>.png                random-walk labels (IRNet's result)
    IRN4GCN/AFF_FEATURE/<name>.npz            features (160,h,w) float16: the GCN's node features
    IRN4GCN/BOUNDARY/<name>.npz               boundary (h,w) float32: the class-boundary map the
                                              GCN's graph is rebuilt from (never a dense N x N matrix)
    IRN4GCN/PARTIAL_PSEUDO_LABEL_DN/<name>.png   partial pseudo labels on the grid (255 = unlabelled)
    IRN4GCN/PARTIAL_PSEUDO_LABEL_DN_UP/<name>.png the same, nearest-upsampled to H x W (for viewing)
    GCN4DeepLab/Label/<name>.png              GCN labels (H, W)
    GCN4DeepLab/Logit/<name>.npz              keys (K,) int64 label indices, background first;
                                              prob (K, H, W) float32 GCN probabilities
    GCN4DeepLab/CRF_Label, CRF_Logit          the same after the dense CRF
    sess/deeplab.pth                          Stage II: DeepLab-v2 trained on the pseudo labels
    DeepLab/<list stem>/Label, CRF_Label      its labels of a list's images (Prob: its softmax)

(h, w) is the stride-4 grid, ((H-1)//4+1, (W-1)//4+1).
"""
from pathlib import Path


def strided_size(size, stride):
    """(ceil(H / stride), ceil(W / stride)): the feature grid of an H x W image."""
    return (size[0] - 1) // stride + 1, (size[1] - 1) // stride + 1


class WorkDir:
    # the CAM network's weights (IRN's --cam_weights_name default), which DeepLab's --init cam reads too
    CAM_WEIGHTS = "sess/res50_cam.pth"

    def __init__(self, root):
        self.root = Path(root)

    def __truediv__(self, rel):
        return self.root / rel

    @property
    def cam(self):
        return self.root / "IRN4GCN" / "CAM"

    @property
    def ir_label(self):
        return self.root / "IRN4GCN" / "IR_LABEL"

    @property
    def sem_seg(self):
        return self.root / "IRN4GCN" / "SEM_SEG"

    @property
    def features(self):
        return self.root / "IRN4GCN" / "AFF_FEATURE"

    @property
    def boundary(self):
        return self.root / "IRN4GCN" / "BOUNDARY"

    @property
    def partial_labels(self):
        return self.root / "IRN4GCN" / "PARTIAL_PSEUDO_LABEL_DN"

    @property
    def partial_labels_full(self):
        return self.root / "IRN4GCN" / "PARTIAL_PSEUDO_LABEL_DN_UP"

    @property
    def gcn_label(self):
        return self.root / "GCN4DeepLab" / "Label"

    @property
    def gcn_logit(self):
        return self.root / "GCN4DeepLab" / "Logit"

    @property
    def crf_label(self):
        return self.root / "GCN4DeepLab" / "CRF_Label"

    @property
    def crf_logit(self):
        return self.root / "GCN4DeepLab" / "CRF_Logit"

    def deeplab(self, list_path):
        """Stage II's outputs for the images of ``list_path``: ``DeepLab/<list file stem>``."""
        return self.root / "DeepLab" / Path(list_path).stem

    @property
    def logs(self):
        return self.root / "logs"
