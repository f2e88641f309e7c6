"""What a network offers beyond ``forward(lq) -> image``, as the network itself declares it.

Our architectures declare their capabilities as class attributes (``supports_intermediates = True``
on DeepFnF, ``trainable = False`` on the classical references); whatever uses a network reads them
through :func:`capability` and never probes its methods or signature. A network that declares
nothing, such as BasicSR's SwinIR and RRDBNet or a plugin's, gets the defaults: a trainable
network run by the plain call, with no extra outputs and no whole-image statistics.
"""
from __future__ import annotations

from typing import Any

# Every capability and the value of a network that does not declare it.
DEFAULTS = {
    # It has parameters to learn; False: training refuses it and testing needs no weights.
    'trainable': True,
    # forward(lq, return_intermediates=True) returns a dict whose 'output' is the estimate.
    'supports_intermediates': False,
    # Its kernel basis comes from whole-image averages of feature maps: basis_feature_maps(lq) gives the maps,
    # basis_from_pooled(averages) decodes the basis, forward(lq, basis=...) uses a given one (tiled inference
    # averages the maps over all tiles; the contract is written in fnf_basicsr/archs/contracts.py).
    'global_basis_statistics': False,
    # Its input is padded to a multiple of this many pixels (basis_feature_maps are that grid / 2^k); None: 32,
    # the pooling grid of the networks here.
    'size_multiple': None,
    # 'frame_mean': its encoder divides each frame by the frame's mean; forward(lq, frame_means=...) and
    # encode(lq, frame_means=...) take whole-image means (tiled inference normalises every tile alike).
    'input_normalization': 'none',
    # The number of lq channels it takes; None: it does not say.
    'in_channels': None,
}


def capability(net: Any, name: str) -> Any:
    """The value ``net`` (a network or its class) declares for capability ``name``, else the default.

    Args:
        net: a network (``torch.nn.Module``) or its class.
        name: a key of :data:`DEFAULTS`.

    Returns:
        The class attribute ``name`` of ``net`` if it has one, else ``DEFAULTS[name]``.

    Raises:
        KeyError: ``name`` is not one of :data:`DEFAULTS` (a typo would otherwise read the default).

    Example:
        >>> class Reference:
        ...     trainable = False
        >>> capability(Reference, 'trainable'), capability(Reference, 'supports_intermediates')
        (False, False)
    """
    if name not in DEFAULTS:
        raise KeyError(f'unknown network capability {name!r}; known: {sorted(DEFAULTS)}')
    return getattr(net, name, DEFAULTS[name])
