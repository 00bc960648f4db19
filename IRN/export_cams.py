r"""Write this project's CAMs in IRNet's own format, for code that reads IRNet's make_cam output.

    python IRN/export_cams.py --work_dir Data --list Data/VOC12/train.txt --out DIR

Each ``IRN4GCN/CAM/<name>.npz`` becomes ``DIR/<name>.npy``: the pickled dict IRNet's make_cam
saves, ``keys`` and ``cam`` as torch tensors and ``high_res`` as a numpy array.  ``import_cams``
reads such a folder back (with ``--allow_pickle True``).
"""
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wsgcn.infra.config import LABEL_LIST, CommonConfig, field
from wsgcn.infra.io import atomic_path, prepare_outputs
from wsgcn.infra.layout import WorkDir
from wsgcn.infra.scripts import tool_main
from wsgcn.seg.dataset import DataConfig, describe, read_image_list
from wsgcn.seg.scores import find_score_file, load_cams


@dataclass(frozen=True)
class ExportCamsConfig(DataConfig):
    work_dir: str = field(CommonConfig.work_dir, "the run whose IRN4GCN/CAM/<name>.npz are exported")
    list: str = field(LABEL_LIST, "the images to export")
    out: str = field("", "folder for the <name>.npy files (required)")


def export_cams(cam_dir, names, out_dir, num_object_classes):
    """Write ``out_dir/<name>.npy`` for every name; returns how many."""
    out_dir = Path(out_dir)
    prepare_outputs([out_dir])
    for name in names:
        cams = load_cams(find_score_file(cam_dir, name), num_object_classes)
        irnet = {"keys": torch.from_numpy(cams["classes"]), "cam": torch.from_numpy(cams["cam"]),
                 "high_res": cams["high_res"]}
        with atomic_path(out_dir / f"{name}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, irnet, allow_pickle=True)
    return len(names)


def run(cfg):
    if not cfg.out:
        raise ValueError("--out is required: the folder for the <name>.npy files")
    count = export_cams(WorkDir(cfg.work_dir).cam, read_image_list(cfg.list), cfg.out,
                        describe(cfg.dataset).num_classes - 1)
    print(f"export_cams: {count} images to {cfg.out}")


def main(argv=None):
    return tool_main(run, ExportCamsConfig, argv, __doc__, prog="export_cams.py")


if __name__ == "__main__":
    sys.exit(main())
