"""``taiji.datasets``: MNIST / Fashion-MNIST (IDX files), a synthetic recommender dataset,
and image ``transforms``."""
from taiji.datasets.idx import MNIST, FashionMNIST, read_idx, write_idx  # noqa: F401
from taiji.datasets.recommender import SyntheticRecommender  # noqa: F401
from taiji.datasets import transforms  # noqa: F401

__all__ = ["MNIST", "FashionMNIST", "SyntheticRecommender", "read_idx", "write_idx",
           "transforms"]
