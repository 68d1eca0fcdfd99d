"""The SEE loss with its proxies sharded over processes, for many classes.

With W processes (torch.distributed: gloo on CPUs, NCCL on GPUs) each holds
the proxies of C/W classes and their optimizer state. Every step the rows of
the batch and their labels are gathered, each process scores its own
classes, and the shares of the loss are summed; the communication per step
depends on the batch (N x D), never on C. The loss, and every gradient, is
that of one process holding every proxy.

    loss_fn = see_cuda.sharded.ShardedSEEProxyAnchorLoss(num_classes, embedding_size)
    loss = loss_fn(embeddings, labels)

or functionally `sharded_see_loss(embeddings, labels, proxy_shard, num_classes)`. The softmax
family (Proxy-NCA, Normalized Softmax, CosFace, ArcFace): ShardedSoftmaxFamilyLoss, or
functionally sharded_softmax_family_loss.
"""
from .collectives import CommunicationLog, record_communication
from .functional import sharded_see_loss
from .loss import ShardedSEEProxyAnchorLoss
from .partition import ClassShard, class_partition, class_shard
from .softmax_family import sharded_softmax_family_loss
from .softmax_loss import ShardedSoftmaxFamilyLoss

__all__ = [
    "ClassShard",
    "CommunicationLog",
    "ShardedSEEProxyAnchorLoss",
    "ShardedSoftmaxFamilyLoss",
    "class_partition",
    "class_shard",
    "record_communication",
    "sharded_see_loss",
    "sharded_softmax_family_loss",
]
