"""Step 7: mIoU of the random-walk labels (docs/method.md §5)."""
from wsgcn.layout import WorkDir
from wsgcn.metrics import evaluate_label_maps, format_iou_table
from wsgcn.voc import VOC12, read_image_list


def run(cfg):
    work = WorkDir(cfg.work_dir)
    names = read_image_list(cfg.infer_list)
    conf = evaluate_label_maps(work.sem_seg, VOC12(cfg.voc12_root).gt_dir, names)
    print(f"eval_sem_seg: {len(names)} images, random-walk labels {work.sem_seg}")
    print(format_iou_table(conf))
