"""Shared pytest set-up: deliberate thread counts (2-core machines) and offline finn-plus."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # torch is a hard dependency; this only keeps collection errors readable
        pass


@pytest.fixture(scope="session", autouse=True)
def _finn_offline(tmp_path_factory):
    from compiler.finn_env import ensure_finn_offline

    ensure_finn_offline(os.environ.get("FINN_BUILD_DIR") or tmp_path_factory.mktemp("finn_build"))
