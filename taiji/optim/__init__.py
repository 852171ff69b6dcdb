"""``taiji.optim``: optimizers and learning-rate schedules with PyTorch's names, plus an
optax-style functional API in ``taiji.optim.functional``."""
from taiji.optim.optimizer import Optimizer  # noqa: F401
from taiji.optim.sgd import SGD  # noqa: F401
from taiji.optim.adam import Adam, AdamW, Adamax, NAdam  # noqa: F401
from taiji.optim.rmsprop import RMSprop, Adagrad, Adadelta  # noqa: F401
from taiji.optim import lr_scheduler, functional  # noqa: F401
