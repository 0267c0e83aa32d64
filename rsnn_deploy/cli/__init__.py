"""The ``rsnn-deploy`` command line, one module per command group.

=================  ==============================================================
module             commands
=================  ==============================================================
``_app``           the ``cli`` group, :func:`main` and its one-line error boundary
``train``          ``train``, ``evaluate`` (and the task options ``tune`` shares)
``deploy``         ``quantize``, ``compile``, ``verify``, ``model-card``
``tune``           ``tune``, ``experiment steps | tau-sweep``
``export``         ``export``, ``lava-env``
``hil``            ``hil``
``encode``         ``encode``
``nir_import``     ``import``
``xylo``           ``xylo verify | export``
=================  ==============================================================

``rsnn_deploy.cli:main`` is the console script; ``python -m rsnn_deploy`` and
``python -m rsnn_deploy.cli`` run the same function.
"""

from rsnn_deploy.cli._app import cli, main

__all__ = ["cli", "main"]
