"""The seed's recommender in PyTorch style (pytorch-and-jax.md, section 6.1.1), trained on
`taiji.datasets.SyntheticRecommender` (user + item side features -> did the user interact?)
and scored by test ROC AUC against a popularity baseline.

Fixes against the seed listing:
* `train_loader`, `test_loader`, `device` and `test_model` were never defined: they are here;
* "accuracy" of a ranking model divided by the number of batches: the metric is AUC over the
  whole test set (and the popularity baseline it has to beat).
The model keeps the seed's `sigmoid` + `nn.BCELoss`.

Run: python examples/recommender_pytorch_style.py [--epochs 10] [--limit N]
"""
import numpy as np

import taiji
import taiji.nn as nn
from taiji._train import example_args, popularity_auc, roc_auc
from taiji.datasets import SyntheticRecommender
from taiji.utils.data import DataLoader, Subset

args = example_args(__doc__.splitlines()[0], epochs=10, batch_size=64, lr=0.001)
taiji.manual_seed(args.seed)
device = "cpu"
train_set, test_set = SyntheticRecommender(train=True), SyntheticRecommender(train=False)
train_data = train_set if args.limit is None else Subset(train_set, range(args.limit))
train_loader = DataLoader(train_data, batch_size=args.batch_size, shuffle=True)
test_loader = DataLoader(test_set, batch_size=1000)


class Recommender(nn.Module):
    def __init__(self):
        super(Recommender, self).__init__()
        self.fc1 = nn.Linear(100, 50)
        self.fc2 = nn.Linear(50, 10)
        self.fc3 = nn.Linear(10, 1)

    def forward(self, x):
        x = x.view(-1, 100)
        x = taiji.relu(self.fc1(x))
        x = taiji.relu(self.fc2(x))
        x = taiji.sigmoid(self.fc3(x))
        return x


def test_model(model, test_loader):
    scores, labels = [], []
    with taiji.no_grad():
        for items, ratings in test_loader:
            scores.append(model(items.to(device)).numpy())
            labels.append(ratings.numpy())
    return roc_auc(np.concatenate(scores), np.concatenate(labels))


model = Recommender().to(device)
criterion = nn.BCELoss().to(device)
optimizer = taiji.optim.Adam(model.parameters(), lr=args.lr)

for epoch in range(args.epochs):
    total = 0.0
    for i, (items, ratings) in enumerate(train_loader):
        items = items.to(device)
        ratings = ratings.to(device)
        optimizer.zero_grad()
        outputs = model(items)
        loss = criterion(outputs, ratings)
        loss.backward()
        optimizer.step()
        total += loss.item()
        if (i + 1) % 100 == 0:
            print(f"Epoch [{epoch + 1}/{args.epochs}], Step [{i + 1}/{len(train_loader)}], "
                  f"Loss: {loss.item():.4f}")
    print(f"Epoch [{epoch + 1}/{args.epochs}] mean loss: {total / len(train_loader):.4f}")

print(f"Test AUC: {test_model(model, test_loader):.4f} "
      f"(popularity baseline: {popularity_auc(train_set, test_set):.4f})")
