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
from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

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

    Example:
        >>> import torch
        >>> class Identity(torch.nn.Module):
        ...     def forward(self, lq):
        ...         return lq[:, :3]
        >>> isinstance(Identity(), DenoisingNetwork)
        True
    """

    def __call__(self, lq: Tensor) -> Tensor:
        """The denoised no-flash image.

        Args:
            lq: the network input.

        Returns:
            The estimate (linear, at the input's scale).
        """


@runtime_checkable
class ExposesIntermediates(Protocol):
    """``supports_intermediates = True``: ``net(lq, return_intermediates=True)`` returns a dict.

    Keys: ``output`` (the estimate, as :class:`DenoisingNetwork`), optionally ``filtered`` and ``scale_map``,
    each (B, 3, H, W) (DeepFnF's F and G, Eq. 5; ``fnf-benchmark`` strips draw them when both are there).

    Example:
        >>> import torch
        >>> from fnf_basicsr.archs.deepfnf_arch import DeepFnF
        >>> net = DeepFnF(width=0.0625, num_basis=4, kernel_size=5, upsample=2)
        >>> isinstance(net, ExposesIntermediates), sorted(net(torch.rand(1, 12, 8, 8), return_intermediates=True))
        (True, ['basis_a', 'basis_b', 'coeffs', 'filtered', 'output', 'scale_map'])
    """
    supports_intermediates: bool

    def __call__(self, lq: Tensor, return_intermediates: bool = False) -> Tensor | dict[str, Any]:
        """The estimate, or the dict of intermediates.

        Args:
            lq: the network input.
            return_intermediates: return the dict instead of the estimate.

        Returns:
            The estimate, or a dict holding it under ``output``.
        """


@runtime_checkable
class WholeImageBasis(Protocol):
    """``global_basis_statistics = True``: a kernel basis predicted from whole-image feature averages.

    Tiled inference calls :meth:`basis_feature_maps` on every tile, averages each map over the whole image
    (weighted by the tiles' blending windows), decodes one basis with :meth:`basis_from_pooled` and runs every
    tile with ``net(tile, basis=basis)``, so a tiled image gets the basis of the whole image.

    Example:
        >>> import torch
        >>> from fnf_basicsr.archs.deepfnf_arch import DeepFnF
        >>> net, lq = DeepFnF(width=0.0625, num_basis=4, kernel_size=5, upsample=2), torch.rand(1, 12, 8, 8)
        >>> basis = net.basis_from_pooled([m.mean(dim=(-2, -1)) for m in net.basis_feature_maps(lq)])
        >>> isinstance(net, WholeImageBasis), torch.allclose(net(lq, basis=basis), net(lq))
        (True, True)
    """
    global_basis_statistics: bool

    def basis_feature_maps(self, lq: Tensor) -> Sequence[Tensor]:
        """Maps (B, C_i, H_i, W_i) at the padded input's resolution divided by powers of 2 (``size_multiple``).

        Args:
            lq: the network input (a tile of the image, or all of it).

        Returns:
            The maps whose global averages :meth:`basis_from_pooled` decodes.
        """

    def basis_from_pooled(self, pooled: Sequence[Tensor]) -> Any:
        """The basis from the maps' global averages, each (B, C_i), in :meth:`basis_feature_maps` order.

        Args:
            pooled: the averages of the maps of :meth:`basis_feature_maps`.

        Returns:
            The basis, in whatever form ``net(lq, basis=...)`` takes.
        """

    def __call__(self, lq: Tensor, basis: Any = None) -> Tensor:
        """Denoise with the given basis (None: the input's own).

        Args:
            lq: the network input.
            basis: a basis from :meth:`basis_from_pooled`, or None.

        Returns:
            The estimate.
        """


def estimate_from_output(output: Tensor) -> Tensor:
    """A network's linear 3-channel estimate: its output, or its first 3 channels when it returns more.

    Some registered restorers keep their input's channel count (BasicSR's SwinIR maps 12 channels to
    12 with a global residual): their first 3 channels are the no-flash frame's slot of ``lq``.

    Args:
        output: what the network returned.

    Returns:
        The estimate (a view of ``output``).

    Shape:
        - output: (B, C, H, W), C >= 3.
        - returned estimate: (B, 3, H, W).

    Example:
        >>> import torch
        >>> estimate_from_output(torch.zeros(2, 12, 4, 4)).shape
        torch.Size([2, 3, 4, 4])
    """
    return output[:, image_channels(NOFLASH_FRAME)] if output.shape[1] > COLOR_CHANNELS else output


# capability -> (protocol, the members it needs beyond calling the network)
REQUIREMENTS = {
    'supports_intermediates': (ExposesIntermediates, ()),
    'global_basis_statistics': (WholeImageBasis, ('basis_feature_maps', 'basis_from_pooled')),
}


def check_network(net: Any, label: str = 'network_g') -> None:
    """Refuse a network that does not meet the contract of what it declares, naming the missing members.

    Args:
        net: the built network (``torch.nn.Module``) or its class.
        label: how messages name it (e.g. ``network_g 'MyNet'``).

    Returns:
        None; a network that meets the contract passes silently.

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
