import pytest

from IRN import run_sample
from wsgcn.demo_data import make_demo_dataset
from wsgcn.seg.voc import VOC12


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """A small embedded demo data set (lists, label table and VOC2012/), shared by the tests."""
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), num_train=8, num_val=4, seed=0)


def irn_test_argv(demo_root, work):
    """run_sample's argv for the tests: the demo profile at tiny sizes, one epoch each."""
    return ["--profile", "demo", "--voc12_root", str(demo_root / "VOC2012"),
            "--train_list", str(demo_root / "train.txt"), "--infer_list", str(demo_root / "val.txt"),
            "--cls_labels", str(demo_root / "cls_labels.txt"), "--work_dir", str(work),
            "--cam_crop_size", "64", "--cam_batch_size", "4", "--cam_num_epoches", "1", "--cam_scales", "1.0", "0.5",
            "--irn_crop_size", "96", "--irn_batch_size", "4", "--irn_num_epoches", "1", "--num_workers", "0",
            "--quiet", "True"]


@pytest.fixture(scope="session")
def irn_run(demo_root, tmp_path_factory):
    """The IRN steps run once with tiny settings on the demo set: (config, work dir, VOC12)."""
    work = tmp_path_factory.mktemp("work")
    cfg = run_sample.main(irn_test_argv(demo_root, work))
    voc = VOC12(demo_root / "VOC2012")
    return cfg, work, voc


def read_scalars(log_dir):
    """{tag: [(step, value), ...]} from the TensorBoard event files under ``log_dir``: records
    are (length uint64, crc uint32, Event proto, crc uint32), as TensorFlow's record format."""
    import struct
    from pathlib import Path

    from tensorboardX.proto.event_pb2 import Event

    scalars = {}
    for path in sorted(Path(log_dir).rglob("events.out.tfevents.*")):
        data, offset = path.read_bytes(), 0
        while offset < len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            event = Event.FromString(data[offset + 12: offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars
