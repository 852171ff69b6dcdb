"""Loss modules (PyTorch's names; each wraps a function of ``taiji.nn.functional``)."""
from __future__ import annotations

from taiji.nn import functional as F
from taiji.nn.module import Module
from taiji.tensor import Tensor


class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        from taiji.nn._loss import _legacy
        self.reduction = _legacy(size_average, reduce, reduction)


class _WeightedLoss(_Loss):
    def __init__(self, weight: Tensor | None = None, size_average=None, reduce=None,
                 reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """Cross entropy of logits against class indices or probabilities (see
    ``F.cross_entropy``)."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross entropy of probabilities."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross entropy, stably; optional ``pos_weight``."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean",
                 pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.weight,
                                                  reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


def _simple(name, fn, extra=(), doc=""):
    def __init__(self, *args, size_average=None, reduce=None, reduction="mean", **kw):
        _Loss.__init__(self, size_average, reduce, reduction)
        vals = dict(extra)
        vals.update(zip([k for k, _ in extra], args))
        vals.update(kw)
        for k, v in vals.items():
            setattr(self, k, v)

    def forward(self, *inputs):
        return fn(*inputs, reduction=self.reduction, **{k: getattr(self, k) for k, _ in extra})
    cls = type(name, (_Loss,), {"__init__": __init__, "forward": forward,
                                "__doc__": doc or f"{name} (see taiji.nn.functional)."})
    cls.__module__ = __name__
    return cls


MSELoss = _simple("MSELoss", F.mse_loss, doc="Mean squared error.")
L1Loss = _simple("L1Loss", F.l1_loss, doc="Mean absolute error.")
SmoothL1Loss = _simple("SmoothL1Loss", F.smooth_l1_loss, (("beta", 1.0),))
HuberLoss = _simple("HuberLoss", F.huber_loss, (("delta", 1.0),))
KLDivLoss = _simple("KLDivLoss", F.kl_div, (("log_target", False),))
CosineEmbeddingLoss = _simple("CosineEmbeddingLoss", F.cosine_embedding_loss,
                              (("margin", 0.0),))
MarginRankingLoss = _simple("MarginRankingLoss", F.margin_ranking_loss, (("margin", 0.0),))
SoftMarginLoss = _simple("SoftMarginLoss", F.soft_margin_loss)
HingeEmbeddingLoss = _simple("HingeEmbeddingLoss", F.hinge_embedding_loss, (("margin", 1.0),))
TripletMarginLoss = _simple("TripletMarginLoss", F.triplet_margin_loss,
                            (("margin", 1.0), ("p", 2.0), ("eps", 1e-6), ("swap", False)))
PoissonNLLLoss = _simple("PoissonNLLLoss", F.poisson_nll_loss,
                         (("log_input", True), ("full", False), ("eps", 1e-8)))
GaussianNLLLoss = _simple("GaussianNLLLoss", F.gaussian_nll_loss,
                          (("full", False), ("eps", 1e-6)))
