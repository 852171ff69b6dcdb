"""A synthetic implicit-feedback recommender dataset (for the seed's recommender example).

Users and items have latent factors; their observable side features are noisy linear
images of those factors; a user's positives are drawn with probability rising with the
user-item affinity, and each positive is paired with sampled negatives (items the user never
interacted with). Everything comes from one NumPy ``SeedSequence(seed)``, independent of
taiji's global generator, so ``train=True`` and ``train=False`` with the same arguments are
the two halves of one deterministic split.
"""
from __future__ import annotations

import numpy as np

from taiji import _ops as O
from taiji.utils.data.dataset import Dataset

__all__ = ["SyntheticRecommender"]


class SyntheticRecommender(Dataset):
    """Implicit feedback from a latent-factor model, as (features, label) pairs.

    Each item of the dataset is ``(x, y)``: ``x`` a float32 vector concatenating the user's
    and the item's side features (``user_features + item_features`` long, 100 by default, the
    input size of the seed's ``Recommender`` MLP) and ``y`` a float32 [1] tensor, 1.0 for an
    interaction and 0.0 for a sampled negative (the target of ``nn.BCELoss``).

    Args:
        train: the training split (else the test split).
        n_users, n_items: population sizes.
        n_factors: latent dimension of the true model.
        user_features, item_features: side-feature widths.
        positives_per_user: interactions drawn per user.
        negatives_per_positive: sampled negatives per interaction.
        test_fraction: share of interactions (with their negatives) held out for the test set.
        noise: standard deviation of the side-feature noise.
        seed: the seed of everything.

    Attributes:
        users, items: int64 tensors, the (user, item) of every example in this split.
        labels: float32 tensor [N].
        user_side, item_side: float32 feature tables [n_users, user_features] and
            [n_items, item_features] (for embedding-style models).
        affinity: float64 NumPy [n_users, n_items], the true scores (for evaluation).

    Example:
        >>> train = SyntheticRecommender(train=True)
        >>> loader = DataLoader(train, batch_size=64, shuffle=True)
        >>> for x, y in loader: ...   # x [64, 100], y [64, 1]
    """

    def __init__(self, train: bool = True, n_users: int = 1000, n_items: int = 500,
                 n_factors: int = 8, user_features: int = 50, item_features: int = 50,
                 positives_per_user: int = 20, negatives_per_positive: int = 1,
                 test_fraction: float = 0.2, noise: float = 0.1, seed: int = 0):
        if positives_per_user * (1 + negatives_per_positive) > n_items:
            raise ValueError(f"positives_per_user * (1 + negatives_per_positive) = "
                             f"{positives_per_user * (1 + negatives_per_positive)} exceeds "
                             f"n_items = {n_items}")
        if not 0.0 <= test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
        rng = np.random.default_rng(np.random.SeedSequence(seed))
        k = n_factors
        U = rng.standard_normal((n_users, k))
        V = rng.standard_normal((n_items, k))
        bias = 0.5 * rng.standard_normal(n_items)
        self.affinity = U @ V.T / np.sqrt(k) + bias
        A = rng.standard_normal((k, user_features)) / np.sqrt(k)
        B = rng.standard_normal((k, item_features)) / np.sqrt(k)
        self._user_side = (U @ A + noise * rng.standard_normal((n_users, user_features))
                           ).astype(np.float32)
        self._item_side = (V @ B + noise * rng.standard_normal((n_items, item_features))
                           ).astype(np.float32)
        # positives: Gumbel top-k, i.e. sampling without replacement with p ~ exp(affinity)
        g = rng.gumbel(size=(n_users, n_items))
        order = np.argsort(-(self.affinity + g), axis=1, kind="stable")
        pos = order[:, :positives_per_user]
        # negatives: uniform among the items the user did not pick
        rest = order[:, positives_per_user:]
        pick = np.argsort(rng.random(rest.shape), axis=1, kind="stable")
        neg = np.take_along_axis(rest, pick[:, :positives_per_user * negatives_per_positive],
                                 axis=1)
        users = np.repeat(np.arange(n_users), positives_per_user)
        in_test = rng.random(users.shape[0]) < test_fraction
        pos_items = pos.reshape(-1)
        neg_items = neg.reshape(n_users * positives_per_user, negatives_per_positive)
        keep = ~in_test if train else in_test
        u = np.concatenate([users[keep], np.repeat(users[keep], negatives_per_positive)])
        i = np.concatenate([pos_items[keep], neg_items[keep].reshape(-1)])
        y = np.concatenate([np.ones(keep.sum(), np.float32),
                            np.zeros(keep.sum() * negatives_per_positive, np.float32)])
        perm = rng.permutation(len(u)) if train else np.argsort(u, kind="stable")
        self._users, self._items, self._labels = u[perm], i[perm], y[perm]
        self._x = np.concatenate([self._user_side[self._users], self._item_side[self._items]],
                                 axis=1)
        self.train = train
        self.n_users, self.n_items = n_users, n_items
        self.users, self.items = O.const(self._users), O.const(self._items)
        self.labels = O.const(self._labels)
        self.user_side, self.item_side = O.const(self._user_side), O.const(self._item_side)

    @property
    def num_features(self) -> int:
        return self._x.shape[1]

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int):
        return O.const(self._x[index]), O.const(self._labels[index:index + 1]
                                                if index >= 0 else self._labels[[index]])

    def __getbatch__(self, indices: np.ndarray):
        return [O.const(self._x[indices]), O.const(self._labels[indices][:, None])]
