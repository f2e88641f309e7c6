"""What a network must offer to be trained, scored and used here: the contract, written as code.

Training (``basicsr train``), ``fnf-benchmark`` and ``fnf-denoise`` accept any network registered in
BasicSR's ``ARCH_REGISTRY`` that meets :class:`DenoisingNetwork`. Whatever more it offers it declares as
class attributes (:mod:`fnf_basicsr.archs.capabilities`), and then it must meet the matching protocol:

* ``supports_intermediates = True``: :class:`ExposesIntermediates` (``fnf-benchmark`` strips show
  ``filtered`` and ``scale_map`` when the dict has both),
* ``global_basis_statistics = True``: :class:`WholeImageBasis` (``fnf-denoise`` tiles large captures
  with one basis for the whole image),
* ``trainable = False``: a parameter-free method (the classical references): training refuses it and
  testing needs no weights.

:func:`check_network` is called where a network is built for these commands and names what a declared
capability lacks. docs/extending.md walks through adding one.
"""
from typing import Protocol, Sequence, runtime_checkable

from torch import Tensor

from fnf_basicsr.archs.capabilities import capability
from fnf_basicsr.data.input_layout import COLOR_CHANNELS, NOFLASH_FRAME, image_channels
from fnf_basicsr.errors import ConfigError


@runtime_checkable
class DenoisingNetwork(Protocol):
    """Every network: ``net(lq)`` maps the input layout of :mod:`fnf_basicsr.data.input_layout` to an estimate.

    Shape:
        - lq: (B, C, H, W), C = 12 (flash/no-flash, or a 2-frame no-flash burst) or 6 (no-flash only).
        - output: (B, 3 + k, H, W) at the no-flash frame's geometry and scale (linear, dimmed as the input);
          a network returning more than 3 channels (a restorer mapping all its inputs) is read for its first
          3 (:func:`estimate_from_output`).
    """

    def __call__(self, lq: Tensor) -> Tensor:
        """The denoised no-flash image."""


@runtime_checkable
class ExposesIntermediates(Protocol):
    """``supports_intermediates = True``: ``net(lq, return_intermediates=True)`` returns a dict.

    Keys: ``output`` (the estimate, as :class:`DenoisingNetwork`), optionally ``filtered`` and ``scale_map``,
    each (B, 3, H, W) (DeepFnF's F and G, Eq. 5; ``fnf-benchmark`` strips draw them when both are there).
    """
    supports_intermediates: bool

    def __call__(self, lq: Tensor, return_intermediates: bool = False):
        """The estimate, or the dict of intermediates."""


@runtime_checkable
class WholeImageBasis(Protocol):
    """``global_basis_statistics = True``: a kernel basis predicted from whole-image feature averages.

    Tiled inference calls :meth:`basis_feature_maps` on every tile, averages each map over the whole image
    (weighted by the tiles' blending windows), decodes one basis with :meth:`basis_from_pooled` and runs every
    tile with ``net(tile, basis=basis)``, so a tiled image gets the basis of the whole image.
    """
    global_basis_statistics: bool

    def basis_feature_maps(self, lq: Tensor) -> Sequence[Tensor]:
        """Maps (B, C_i, H_i, W_i) at the padded input's resolution divided by powers of 2 (``size_multiple``)."""

    def basis_from_pooled(self, pooled: Sequence[Tensor]):
        """The basis from the maps' global averages, each (B, C_i), in :meth:`basis_feature_maps` order."""

    def __call__(self, lq: Tensor, basis=None) -> Tensor:
        """Denoise with the given basis (None: the input's own)."""


def estimate_from_output(output):
    """A network's linear 3-channel estimate: its output, or its first 3 channels when it returns more.

    Some registered restorers keep their input's channel count (BasicSR's SwinIR maps 12 channels to
    12 with a global residual): their first 3 channels are the no-flash frame's slot of ``lq``.
    """
    return output[:, image_channels(NOFLASH_FRAME)] if output.shape[1] > COLOR_CHANNELS else output


# capability -> (protocol, the members it needs beyond calling the network)
REQUIREMENTS = {
    'supports_intermediates': (ExposesIntermediates, ()),
    'global_basis_statistics': (WholeImageBasis, ('basis_feature_maps', 'basis_from_pooled')),
}


def check_network(net, label='network_g'):
    """Refuse a network that does not meet the contract of what it declares, naming the missing members.

    Args:
        net: the built network (``torch.nn.Module``) or its class.
        label: how messages name it (e.g. ``network_g 'MyNet'``).

    Raises:
        ConfigError: ``net`` is not callable, or declares a capability without the members it needs.

    Example:
        >>> import torch
        >>> class Plain(torch.nn.Module):
        ...     def forward(self, lq):
        ...         return lq[:, :3]
        >>> check_network(Plain())
        >>> class Claims(Plain):
        ...     global_basis_statistics = True
        >>> try:
        ...     check_network(Claims())
        ... except ConfigError as error:
        ...     print(str(error)[:79])
        network_g Claims declares global_basis_statistics but lacks basis_feature_maps,
    """
    name = net.__name__ if isinstance(net, type) else type(net).__name__
    if not callable(net):
        raise ConfigError(f'{label} {name} is not callable: a network maps lq to its estimate (net(lq))')
    for flag, (_, members) in REQUIREMENTS.items():
        missing = [member for member in members if not callable(getattr(net, member, None))]
        if capability(net, flag) and missing:
            raise ConfigError(f'{label} {name} declares {flag} but lacks {", ".join(missing)} '
                              '(fnf_basicsr/archs/contracts.py, docs/extending.md)')
