"""Shared pytest setup: exact (non-oneDNN) CPU kernels and paths to ../shared."""

import os

# oneDNN kernels move VGG activations by ~1e-3 (SPEC, "Numerical tolerance"); the
# faithfulness tests compare against independent re-expressions, so use Eigen kernels.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def referit_data_dir():
    """The release's real annotation files in ../shared/referit-data (skipped if absent)."""
    path = SHARED_DIR / "referit-data"
    if not (path / "vocabulary_referit.txt").exists():
        pytest.skip("../shared/referit-data is not available")
    return path


@pytest.fixture(scope="session")
def demo_image_path():
    """The release's demo image ../shared/demo/38100.jpg (skipped if absent)."""
    path = SHARED_DIR / "demo" / "38100.jpg"
    if not path.exists():
        pytest.skip("../shared/demo/38100.jpg is not available")
    return path
