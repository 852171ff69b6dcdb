"""``taiji.utils.data``: datasets, samplers and the ``DataLoader`` (PyTorch's names)."""
from taiji.utils.data.dataset import (  # noqa: F401
    Dataset, IterableDataset, TensorDataset, ConcatDataset, ChainDataset, Subset, random_split,
)
from taiji.utils.data.sampler import (  # noqa: F401
    Sampler, SequentialSampler, RandomSampler, SubsetRandomSampler, WeightedRandomSampler,
    BatchSampler, DistributedSampler,
)
from taiji.utils.data._collate import default_collate, default_convert  # noqa: F401
from taiji.utils.data._worker import WorkerInfo, get_worker_info  # noqa: F401
from taiji.utils.data.dataloader import DataLoader  # noqa: F401

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "ConcatDataset", "ChainDataset",
           "Subset", "random_split", "Sampler", "SequentialSampler", "RandomSampler",
           "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler",
           "DistributedSampler", "default_collate", "default_convert", "WorkerInfo",
           "get_worker_info", "DataLoader"]
