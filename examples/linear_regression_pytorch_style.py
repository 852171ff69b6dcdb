"""Linear regression in PyTorch style (pytorch-and-jax.md, section 4.1).

The seed shows only the model class; this adds the data (a synthetic `y = X w + b + noise`
problem), the loss, the optimizer and the loop it implies. Fix against the seed listing: it
used `nn` without importing it.

Run: python examples/linear_regression_pytorch_style.py [--epochs 20] [--limit N]
"""
import taiji
import taiji.nn as nn
from taiji._train import example_args, linear_problem
from taiji.utils.data import DataLoader, TensorDataset

args = example_args(__doc__.splitlines()[0], epochs=20, batch_size=64, lr=0.05)
taiji.manual_seed(args.seed)
X, y, w_true, b_true = linear_problem(n=args.limit or 4096, seed=args.seed)
train_loader = DataLoader(TensorDataset(taiji.from_numpy(X), taiji.from_numpy(y)),
                          batch_size=args.batch_size, shuffle=True)


class LinearRegression(nn.Module):
    def __init__(self, input_size, output_size):
        super(LinearRegression, self).__init__()
        self.linear = nn.Linear(input_size, output_size)

    def forward(self, x):
        return self.linear(x)


model = LinearRegression(X.shape[1], 1)
criterion = nn.MSELoss()
optimizer = taiji.optim.SGD(model.parameters(), lr=args.lr)

for epoch in range(args.epochs):
    total = 0.0
    for inputs, targets in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(inputs)
    print(f"Epoch [{epoch + 1}/{args.epochs}] MSE: {total / len(X):.5f}")

w_err = float(abs(model.linear.weight.detach().numpy().T - w_true).max())
print(f"max |w - w_true|: {w_err:.4f}, b: {model.linear.bias.item():.4f} "
      f"(true {float(b_true):.4f})")
