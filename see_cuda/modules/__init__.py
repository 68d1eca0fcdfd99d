"""The loss modules, one per file, as pytorch-metric-learning's drop-ins.

base.py: what they all share; weight_matrix.py: what those with PML's W share.
"""
from .arcface import ArcFaceLoss
from .cosface import CosFaceLoss
from .normalized_softmax import NormalizedSoftmaxLoss
from .proxy_anchor import ProxyAnchorLoss
from .proxy_nca import ProxyNCALoss

__all__ = ["ArcFaceLoss", "CosFaceLoss", "NormalizedSoftmaxLoss", "ProxyAnchorLoss", "ProxyNCALoss"]
