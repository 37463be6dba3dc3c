"""Test-wide settings: never download anything, loopback-only DDP, headless plotting."""
import os

os.environ["DLCV_OFFLINE"] = "1"  # any attempt to fetch weights fails at once with a clear error
os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if not items:
        raise pytest.UsageError("no tests collected")


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """A small generated hw1_data/ (all three problems), shared by the whole session."""
    from dlcv.demo import DemoScale, write_demo_data

    root = tmp_path_factory.mktemp("hw1_data")
    scale = DemoScale(p1_train_per_class=20, p1_val_per_class=3, p1_test=40,
                      p2_mini=96, p2_office_train_per_class=2, p2_office_val_per_class=1, p2_office_test=12,
                      p3_train=12, p3_val=6, p3_test=4, p3_size=64)
    write_demo_data(root, scale, seed=1)
    return root
