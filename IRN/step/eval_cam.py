"""Step 3: mIoU of the CAMs: background plane ``cam_eval_thres``, argmax (SPEC §2)."""
import numpy as np

from wsgcn.cams import cam_label_map, find_cam_file, load_cams
from wsgcn.layout import WorkDir
from wsgcn.metrics import confusion_matrix, format_iou_table
from wsgcn.voc import VOC12, read_image_list


def run(cfg):
    work = WorkDir(cfg.work_dir)
    voc = VOC12(cfg.voc12_root)
    names = read_image_list(cfg.infer_list)
    conf = 0
    for name in names:
        gt = voc.load_gt(name)
        cams = load_cams(find_cam_file(work.cam, name, cfg.allow_pickle), cfg.allow_pickle, gt.shape)
        conf = conf + confusion_matrix(gt, cam_label_map(cams["high_res"], cams["keys"], cfg.cam_eval_thres))
    print(f"eval_cam: {len(names)} images, background score {cfg.cam_eval_thres}")
    print(format_iou_table(np.asarray(conf)))
