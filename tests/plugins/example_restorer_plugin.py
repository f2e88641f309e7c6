"""Stands for another BasicSR plugin: a package that registers a restorer of its own.

Listing it under ``plugins:`` in an option file is all it takes to train and score its network with
our data and model (tests/test_plugin_restorers.py); the README shows the same with a real package.
"""
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn


@ARCH_REGISTRY.register()
class ExamplePluginRestorer(nn.Module):
    """A residual restorer on the no-flash frame: lq (B, C, H, W) -> lq[:, :3] + f(lq)."""

    def __init__(self, num_in_ch=12, num_feat=8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(num_in_ch, num_feat, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(num_feat, 3, 3, padding=1))

    def forward(self, lq):
        return lq[:, :3] + self.body(lq)
