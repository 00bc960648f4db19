import pytest

from wsgcn.demo_data import make_demo_dataset


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """A small embedded demo data set (lists, label table and VOC2012/), shared by the tests."""
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), num_train=8, num_val=4, seed=0)
