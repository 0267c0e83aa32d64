"""``lava``: Lava 0.10's own fixed-point processes (LIF / ATRLIF, Dense) in a Python 3.10 side environment.

The backend writes the same bundle as ``rsnn-deploy export --format lava``
(:func:`rsnn_deploy.export._lava.export_lava`) into a temporary folder and runs its
``run_lava.py`` with the side environment's interpreter (:mod:`rsnn_deploy.lava_env`);
every sample starts from rest (``chunk`` samples run side by side as independent copies
in one Lava network). Slow (about 0.4 s a sample for 128 neurons, T = 40: Lava compiles
each network and reads sinks and monitors one element at a time), hence a slow backend
with its own sample budget in ``verify``.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from rsnn_deploy.backends import Backend, BackendSource, check_input, register_backend
from rsnn_deploy.errors import RsnnError
from rsnn_deploy.trace import Trace, host_readout

__all__ = ["LavaBackend", "run_lava"]


def run_lava(qnet: Any, spikes: np.ndarray, record_states: bool = False, progress: Any = None,
             python: str | None = None, chunk: int = 8) -> Trace:
    """Run ``qnet`` on Lava (the bundle's script in the side environment); returns an aligned Trace."""
    from rsnn_deploy.export._lava import export_lava
    from rsnn_deploy.lava_env import ensure_env

    py = python or ensure_env()
    x = check_input(spikes, qnet.n_inputs, "lava")
    with tempfile.TemporaryDirectory(prefix="rsnn-lava-") as tmp:
        d = Path(tmp)
        export_lava(qnet, d / "bundle")
        np.savez(d / "in.npz", spikes=x)
        cmd = [py, str(d / "bundle" / "run_lava.py"), str(d / "bundle" / "network.json"), str(d / "in.npz"),
               str(d / "out.npz"), "--chunk", str(int(chunk))] + (["--record-states"] if record_states else [])
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        tail: list[str] = []
        done = 0
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("sample "):
                n = int(line.split()[1].split("/")[0])
                if progress is not None:
                    progress(n - done)
                done = n
            else:
                tail = [*tail, line.rstrip()][-20:]
        if proc.wait() != 0:
            last = next((t for t in reversed(tail) if t.strip()), "no message")
            raise RsnnError(f"backend lava: run_lava.py failed (exit {proc.returncode}): {last}")
        with np.load(d / "out.npz", allow_pickle=False) as z:
            got = {k: np.asarray(z[k]) for k in z.files}
    spikes_out = got["spikes"].astype(bool)
    readout, logits = host_readout(spikes_out, qnet.w_out, qnet.b_out, qnet.readout_decay, qnet.readout_mode)  # type: ignore[arg-type]
    cur = vol = ada = refr = None
    if record_states:
        cur, vol = got["current"], got["voltage"]
        if qnet.is_atrlif:
            ada = got["theta"] - qnet.vth[None, None, :]  # Lava's theta is absolute; the Trace keeps theta - theta_0
            refr = got["r"]
        else:
            ada = np.zeros_like(vol)
    return Trace(spikes=spikes_out, readout=readout, logits=logits, current=cur, voltage=vol, adaptation=ada,
                 refractory=refr, overflow={})


class LavaBackend:
    """QuantizedNetwork (loihi2) on Lava's ``PyLifModelBitAcc`` / ``PyATRLIFModelFixed`` / ``PyDenseModelBitAcc``."""

    name = "lava"

    def __init__(self, qnet: Any, record_states: bool = False, progress: Any = None):
        from rsnn_deploy.export._lava import lava_network
        from rsnn_deploy.lava_env import ensure_env

        lava_network(qnet)  # refuses networks Lava's processes cannot express, before building anything
        self.python = ensure_env()
        self.qnet = qnet
        self.record_states = record_states
        self.progress = progress

    def run(self, spikes: np.ndarray) -> Trace:
        return run_lava(self.qnet, spikes, self.record_states, self.progress, self.python)


def supports(qnet: Any) -> str | None:
    """Why the default ``lava`` backend does not run for ``qnet`` (None: it runs)."""
    from rsnn_deploy import semantics
    from rsnn_deploy.hardware import load_profile
    from rsnn_deploy.lava_env import LavaUnavailable, find_base_python, lava_python

    if semantics.for_profile(load_profile(qnet.profile)).chip_backend != "lava":
        return f"profile {qnet.profile} is not Lava's (loihi2)"
    if qnet.adapt_kind == "threshold":
        return "threshold adaptation with reset is no Lava process (train with adapt_kind atrlif)"
    if lava_python() is None:
        try:
            find_base_python()
        except LavaUnavailable as err:
            return str(err)
    return None


def register() -> None:
    @register_backend("lava", needs="qnet", slow=True,
                      description="Lava 0.10 fixed-point LIF/ATRLIF + Dense (Python 3.10 side env)",
                      integer=True, compare=("agreement", "gap"), supports=supports)
    def _make(source: BackendSource) -> Backend:
        return LavaBackend(source.qnet, source.record_states, source.progress)
