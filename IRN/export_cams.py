r"""Write this project's CAMs in IRNet's own format, for code that reads IRNet's make_cam output.

    python IRN/export_cams.py --work_dir Data --list Data/VOC12/train.txt --out DIR

Each ``IRN4GCN/CAM/<name>.npz`` becomes ``DIR/<name>.npy``: the pickled dict IRNet's make_cam
saves, ``keys`` and ``cam`` as torch tensors and ``high_res`` as a numpy array.  ``import_cams``
reads such a folder back (with ``--allow_pickle True``).
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from wsgcn.io import EnvironmentFault, atomic_path, prepare_outputs
from wsgcn.layout import WorkDir
from wsgcn.scores import find_score_file, load_cams
from wsgcn.voc import read_image_list


def export_cams(cam_dir, names, out_dir):
    """Write ``out_dir/<name>.npy`` for every name; returns how many."""
    out_dir = Path(out_dir)
    prepare_outputs([out_dir])
    for name in names:
        cams = load_cams(find_score_file(cam_dir, name))
        irnet = {"keys": torch.from_numpy(cams["classes"]), "cam": torch.from_numpy(cams["cam"]),
                 "high_res": cams["high_res"]}
        with atomic_path(out_dir / f"{name}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, irnet, allow_pickle=True)
    return len(names)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", default="Data")
    parser.add_argument("--list", default="Data/VOC12/train.txt")
    parser.add_argument("--out", required=True, help="folder for the <name>.npy files")
    args = parser.parse_args(argv)
    try:
        count = export_cams(WorkDir(args.work_dir).cam, read_image_list(args.list), args.out)
    except (FileNotFoundError, ValueError, EnvironmentFault) as e:
        print(f"export_cams.py: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"export_cams: {count} images to {args.out}")


if __name__ == "__main__":
    main()
