"""``taiji.nn``: modules, layers, losses and initialisers with PyTorch's names."""
from taiji.nn.parameter import Parameter, Buffer  # noqa: F401
from taiji.nn.module import Module  # noqa: F401
from taiji.nn.container import (  # noqa: F401
    Sequential, ModuleList, ModuleDict, ParameterList, ParameterDict,
)
from taiji.nn.linear import Identity, Linear, Bilinear, Flatten, Unflatten  # noqa: F401
from taiji.nn.activation import (  # noqa: F401
    ReLU, ReLU6, LeakyReLU, ELU, CELU, SELU, GELU, SiLU, Mish, Tanh, Sigmoid, Softplus,
    Hardtanh, Hardsigmoid, Hardswish, Softsign, LogSigmoid, Threshold, GLU, Softmax,
    LogSoftmax, Softmin, PReLU,
)
from taiji.nn.conv import (  # noqa: F401
    Conv1d, Conv2d, ConvTranspose2d, MaxPool1d, MaxPool2d, AvgPool1d, AvgPool2d,
    AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool2d,
)
from taiji.nn.norm import (  # noqa: F401
    BatchNorm1d, BatchNorm2d, BatchNorm3d, LayerNorm, GroupNorm, RMSNorm, InstanceNorm1d,
    InstanceNorm2d,
)
from taiji.nn.dropout import Dropout, Dropout1d, Dropout2d, AlphaDropout  # noqa: F401
from taiji.nn.embedding import Embedding  # noqa: F401
from taiji.nn.loss import (  # noqa: F401
    CrossEntropyLoss, NLLLoss, BCELoss, BCEWithLogitsLoss, MSELoss, L1Loss, SmoothL1Loss,
    HuberLoss, KLDivLoss, CosineEmbeddingLoss, MarginRankingLoss, SoftMarginLoss,
    HingeEmbeddingLoss, TripletMarginLoss, PoissonNLLLoss, GaussianNLLLoss,
)
from taiji.nn import functional, init, utils  # noqa: F401
from taiji.nn.rnn import (  # noqa: F401
    RNNBase, RNN, LSTM, GRU, RNNCellBase, RNNCell, LSTMCell, GRUCell,
)
from taiji.nn.attention import (  # noqa: F401
    MultiheadAttention, TransformerEncoderLayer, TransformerEncoder,
)
from taiji.nn import parallel  # noqa: F401,E402  (DistributedDataParallel)
