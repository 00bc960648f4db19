"""Step 3: mIoU of the CAMs: background plane ``cam_eval_thres``, argmax (docs/method.md §2)."""
from wsgcn.cams import cam_confusion
from wsgcn.layout import WorkDir
from wsgcn.metrics import format_iou_table
from wsgcn.voc import VOC12, read_image_list


def run(cfg):
    names = read_image_list(cfg.infer_list)
    conf = cam_confusion(WorkDir(cfg.work_dir).cam, VOC12(cfg.voc12_root), names, cfg.cam_eval_thres,
                         cfg.allow_pickle)
    print(f"eval_cam: {len(names)} images, background score {cfg.cam_eval_thres}")
    print(format_iou_table(conf))
