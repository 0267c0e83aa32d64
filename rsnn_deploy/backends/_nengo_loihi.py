"""``nengo-loihi``: nengo-loihi 1.1.0's chip emulator (``target='sim'``) on the compiled network.

Every simulator is built from floats chosen to discretize back to the QuantizedNetwork's
integers and is refused unless its read-back matches
(:func:`rsnn_deploy.backends.nengo.open_checked`). Slow (~2-3k steps/s): ``chunk`` samples
run as independent copies in one simulator. Threshold adaptation is refused with the
reason (nengo-loihi builds ``AdaptiveLIF`` as plain LIF).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rsnn_deploy.backends import Backend, BackendSource, check_input, register_backend
from rsnn_deploy.trace import Trace

__all__ = ["NengoLoihiBackend"]


class NengoLoihiBackend:
    """QuantizedNetwork (loihi1 semantics) on nengo-loihi's emulator."""

    name = "nengo-loihi"

    def __init__(self, qnet: Any, record_states: bool = False, progress: Any = None, chunk: int = 25):
        from rsnn_deploy import semantics
        from rsnn_deploy.backends.nengo import refuse_adaptive_on_loihi
        from rsnn_deploy.errors import UnsupportedError
        from rsnn_deploy.hardware import load_profile

        refuse_adaptive_on_loihi(qnet)
        if semantics.for_profile(load_profile(qnet.profile)).chip_backend != self.name:
            raise UnsupportedError(
                f"backend nengo-loihi: runs nengo-loihi 1.1 semantics (profile loihi1), the network is quantized "
                f"for {qnet.profile!r}; use --backends nengo for it"
            )
        self.qnet = qnet
        self.record_states = record_states
        self.progress = progress
        self.chunk = chunk

    def run(self, spikes: np.ndarray) -> Trace:
        from rsnn_deploy.backends.nengo import run_nengo_loihi

        x = check_input(spikes, self.qnet.n_inputs, self.name)
        return run_nengo_loihi(self.qnet, x, record_states=self.record_states, chunk=self.chunk,
                               on_chunk=self.progress)


def supports(qnet: Any) -> str | None:
    """Why nengo-loihi does not run ``qnet`` by default (None: it runs); named explicitly, it refuses instead."""
    from rsnn_deploy import semantics
    from rsnn_deploy.hardware import load_profile

    if qnet.has_adaptation:
        return "threshold adaptation: nengo-loihi builds AdaptiveLIF as LIF"
    if semantics.for_profile(load_profile(qnet.profile)).chip_backend != "nengo-loihi":
        return f"profile {qnet.profile} is not nengo-loihi's"
    return None


def register() -> None:
    @register_backend("nengo-loihi", needs="qnet", slow=True, description="nengo-loihi emulator (target='sim')",
                      integer=True, compare=("agreement",), record_in_verify=True, supports=supports)
    def _make(source: BackendSource) -> Backend:
        return NengoLoihiBackend(source.qnet, source.record_states, source.progress)
