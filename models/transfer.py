"""Transfer-learning parts of a model: which tensors are the classifier head, and freezing the rest.

The head is timm's ``get_classifier()`` (the Custom CNN's ``classifier``). Freezing the backbone
(``--freeze_epochs``) turns off its gradients -- torch optimizers skip parameters without a
gradient, so neither the update nor the weight decay touches them -- and keeps its BatchNorm layers
in eval mode, so their running statistics stay those of the pretrained weights. The frozen state
is a pure function of the epoch, set again at every epoch start, so a resumed run freezes exactly
as the uninterrupted one did.
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def head_module(model: nn.Module) -> tuple[str, nn.Module]:
    """(qualified name, module) of the classifier head."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else getattr(model, "classifier", None)
    for name, module in model.named_modules():
        if module is head and isinstance(head, nn.Module):
            return name, module
    raise ValueError(f"{type(model).__name__} has no classifier head to tell apart from its backbone")


def head_keys(model: nn.Module) -> list[str]:
    """State-dict keys of the head (``classifier.weight``, ``classifier.bias``)."""
    prefix, module = head_module(model)
    return [f"{prefix}.{k}" if prefix else k for k in module.state_dict()]


def _head_ids(model: nn.Module) -> set[int]:
    return {id(p) for p in head_module(model)[1].parameters()}


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(head parameters, backbone parameters), each in the model's own order."""
    head = _head_ids(model)
    params = list(model.parameters())
    return [p for p in params if id(p) in head], [p for p in params if id(p) not in head]


def _backbone_bn_eval(model: nn.Module, _inputs) -> None:
    """Forward pre-hook while frozen: the training loop's ``model.train()`` is undone for BatchNorm."""
    if model.training:
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.eval()


def set_backbone_frozen(model: nn.Module, frozen: bool) -> None:
    """Train only the head (``frozen``) or everything; idempotent, safe to call every epoch."""
    head = _head_ids(model)
    for p in model.parameters():
        p.requires_grad_(id(p) in head or not frozen)
    handle = getattr(model, "_imgclf_freeze_hook", None)
    if frozen and handle is None:
        model._imgclf_freeze_hook = model.register_forward_pre_hook(_backbone_bn_eval)
    elif not frozen and handle is not None:
        handle.remove()
        model._imgclf_freeze_hook = None
        if model.training:
            model.train()  # BatchNorm back to training mode now, not only at the next epoch
