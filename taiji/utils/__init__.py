"""``taiji.utils``: data loading (``taiji.utils.data``)."""
from taiji.utils import data  # noqa: F401
