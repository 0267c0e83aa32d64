"""The :class:`QuantizedNetwork`: the integers every hardware backend runs, and its files.

=================  ===================================================================
module             concern
=================  ===================================================================
``_network``       the frozen type and its shape/range validation (fields documented there)
``_checks``        representability in a profile's formats (:func:`check_representable`)
``_placement``     cores per block and the target's limits (:func:`placement`, :func:`validate_for`)
``_files``         ``NAME.safetensors`` + ``NAME.json``, written atomically, checked on load
=================  ===================================================================

Every public name is importable from here: ``from rsnn_deploy.qnet import QuantizedNetwork``.
"""

from rsnn_deploy.qnet._checks import check_representable, weight_exponent
from rsnn_deploy.qnet._files import load_qnet, qnet_paths, save_qnet
from rsnn_deploy.qnet._network import FORMAT, FORMAT_VERSION, QuantizedNetwork
from rsnn_deploy.qnet._placement import CoreUsage, Placement, placement, validate_for

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "CoreUsage",
    "Placement",
    "QuantizedNetwork",
    "check_representable",
    "load_qnet",
    "placement",
    "qnet_paths",
    "save_qnet",
    "validate_for",
    "weight_exponent",
]
