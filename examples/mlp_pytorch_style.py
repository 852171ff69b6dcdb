"""The seed's MLP in PyTorch style (pytorch-and-jax.md, sections 3.2.1 and 5.2.1), on
Fashion-MNIST.

Ported with `import taiji` in place of `import torch`. Fixes against the seed listing:
* `device`, `train_loader` and `test_loader` were never defined: they are here;
* `test_model` divided the number of correct answers by `len(test_loader)` (the number of
  *batches*), printing accuracies in the thousands of percent: it divides by the number of
  test images;
* `_, predicted = torch.max(outputs.data, 1)` is kept as `outputs.argmax(1)` (same result).

Run: python examples/mlp_pytorch_style.py [--epochs 10] [--batch-size 64] [--limit N]
"""
import time

import taiji
import taiji.nn as nn
import taiji.optim as optim
from taiji._train import example_args, image_tensors, load_fashion_mnist
from taiji.utils.data import DataLoader, TensorDataset

args = example_args(__doc__.splitlines()[0], epochs=10, batch_size=64, lr=0.001)
taiji.manual_seed(args.seed)
device = "cpu"

data = load_fashion_mnist(args.data_dir)
if data.is_sample:
    print("note: using the Fashion-MNIST sample bundled with taiji (2,000 train images)")
train_loader = DataLoader(TensorDataset(*image_tensors(data.train_images, data.train_labels,
                                                       args.limit)),
                          batch_size=args.batch_size, shuffle=True)
test_loader = DataLoader(TensorDataset(*image_tensors(data.test_images, data.test_labels,
                                                      args.limit)), batch_size=1000)


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 128)
        self.fc3 = nn.Linear(128, 10)

    def forward(self, x):
        x = x.view(-1, 784)
        x = taiji.relu(self.fc1(x))
        x = taiji.relu(self.fc2(x))
        x = self.fc3(x)
        return x


def test_model(model, test_loader):
    correct, total = 0, 0
    with taiji.no_grad():
        for images, labels in test_loader:
            images = images.to(device)
            labels = labels.to(device)
            outputs = model(images)
            predicted = outputs.argmax(1)
            correct += (predicted == labels).sum().item()
            total += len(labels)
    print(f"Test Accuracy: {100 * correct / total:.2f}%")
    return correct / total


net = Net().to(device)
criterion = nn.CrossEntropyLoss().to(device)
optimizer = optim.Adam(net.parameters(), lr=args.lr)

t0, steps = time.perf_counter(), 0
for epoch in range(args.epochs):
    running = 0.0
    for i, (images, labels) in enumerate(train_loader):
        images = images.to(device)
        labels = labels.to(device)
        optimizer.zero_grad()
        outputs = net(images)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        running += loss.item()
        steps += 1
        if (i + 1) % 100 == 0:
            print(f"Epoch [{epoch + 1}/{args.epochs}], Step [{i + 1}/{len(train_loader)}], "
                  f"Loss: {loss.item():.4f}")
    print(f"Epoch [{epoch + 1}/{args.epochs}] mean loss: {running / len(train_loader):.4f}")

test_model(net, test_loader)
print(f"steps/s: {steps / (time.perf_counter() - t0):.1f}")
