"""Where every step reads and writes, all under one work directory (``--work_dir``).

    sess/res50_cam.pth, sess/res50_irn.pth    network weights
    IRN4GCN/CAM/<name>.npz                    keys (K,) int64, cam (K,h,w), high_res (K,H,W) float32
    IRN4GCN/IR_LABEL/<name>.png               inter-pixel relation labels (255 = unsure)
    IRN4GCN/SEM_SEG/<name>.png                random-walk labels (IRNet's result)
    IRN4GCN/AFF_FEATURE/<name>.npz            features (160,h,w) float16: the GCN's node features
    IRN4GCN/BOUNDARY/<name>.npz               boundary (h,w) float32: the class-boundary map the
                                              GCN's graph is rebuilt from (never a dense N x N matrix)
    IRN4GCN/PARTIAL_PSEUDO_LABEL_DN/<name>.png, ..._DN_UP/<name>.png
    GCN4DeepLab/Label, Logit, CRF_Label, CRF_Logit

(h, w) is the stride-4 grid, ((H-1)//4+1, (W-1)//4+1).
"""
from pathlib import Path


class WorkDir:
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
    def logs(self):
        return self.root / "logs"
