"""A Xylo network as the keyword arguments of Rockpool's ``XyloSim.from_specification``, in JSON.

Rockpool 3.1's own saved format is samna's ``XyloConfiguration.to_json``, which needs ``samna``
(on PyPI a stub that downloads at import); the specification is the samna-free form a Rockpool user
loads with::

    spec = {k: np.asarray(v) if isinstance(v, list) else v for k, v in json.load(open(PATH))["spec"].items()}
    from rockpool.devices.xylo.syns61201 import XyloSim, config_from_specification
    sim = XyloSim.from_specification(**spec)          # or config_from_specification(**spec) on a dev kit

(``bias`` is ``bias_hidden`` for ``config_from_specification``.) :func:`load_spec` reads it back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rsnn_deploy.errors import CheckpointError, ValidationError
from rsnn_deploy.io import write_json_atomic
from rsnn_deploy.semantics.xylo_profile import load_xylo_profile
from rsnn_deploy.xylo.network import XyloNetwork, output_neurons_recurrent_error

__all__ = ["FORMAT", "load_spec", "spec_of", "write_spec"]

FORMAT = "rsnn-deploy/xylo-spec"


def spec_of(net: XyloNetwork, dt_s: float = 1e-3) -> dict[str, Any]:
    """``XyloSim.from_specification`` keyword arguments (numpy arrays) for ``net``."""
    return {
        "weights_in": net.w_in,
        "weights_rec": net.w_rec,
        "weights_out": net.w_out,
        "dash_mem": net.dash_mem,
        "dash_mem_out": net.dash_mem_out,
        "dash_syn": net.dash_syn[:, 0],
        "dash_syn_2": net.dash_syn[:, 1] if net.n_synapses == 2 else np.ones(net.n_hidden, np.int64),
        "dash_syn_out": net.dash_syn_out,
        "threshold": net.threshold,
        "threshold_out": net.threshold_out,
        "bias": net.bias,
        "bias_out": net.bias_out,
        "weight_shift_in": int(net.shift_in),
        "weight_shift_rec": int(net.shift_rec),
        "weight_shift_out": int(net.shift_out),
        "dt": dt_s,
    }


def write_spec(net: XyloNetwork, path: str | Path) -> Path:
    spec = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in spec_of(net).items()}
    body = {
        "format": FORMAT,
        "format_version": 1,
        "profile": net.profile,
        "readout_scale": net.readout_scale,
        "readout_mode": net.readout_mode,
        "spec": spec,
    }
    write_json_atomic(path, body)
    return Path(path)


def load_spec(path: str | Path) -> XyloNetwork:
    """Read a spec file back (ours, or one a user wrote with the same keys), checked against its profile.

    A ``weights_out_rec`` entry with nonzero weights (recurrent output neurons) is refused.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: Xylo spec file not found")
    try:
        body = json.loads(p.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{p}: not valid JSON ({err})") from None
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise CheckpointError(f"{p}: format: must be {FORMAT!r}")
    profile = load_xylo_profile(body.get("profile", "xylo-audio2"))
    s = body.get("spec", {})
    try:
        if np.any(np.asarray(s.get("weights_out_rec", 0)) != 0):
            raise output_neurons_recurrent_error(profile)
        w_in = np.asarray(s["weights_in"])
        w_in = w_in[:, :, None] if w_in.ndim == 2 else w_in
        w_rec = np.asarray(s["weights_rec"])
        w_rec = w_rec[:, :, None] if w_rec.ndim == 2 else w_rec
        dash_syn = np.asarray(s["dash_syn"])[:, None]
        if w_in.shape[2] == 2:
            dash_syn = np.stack([np.asarray(s["dash_syn"]), np.asarray(s["dash_syn_2"])], axis=1)
        net = XyloNetwork(
            w_in=w_in,
            w_rec=w_rec,
            w_out=np.asarray(s["weights_out"]),
            shift_in=int(s["weight_shift_in"]),
            shift_rec=int(s["weight_shift_rec"]),
            shift_out=int(s["weight_shift_out"]),
            dash_mem=np.asarray(s["dash_mem"]),
            dash_syn=dash_syn,
            dash_mem_out=np.asarray(s["dash_mem_out"]),
            dash_syn_out=np.asarray(s["dash_syn_out"]),
            threshold=np.asarray(s["threshold"]),
            threshold_out=np.asarray(s["threshold_out"]),
            bias=np.asarray(s["bias"]),
            bias_out=np.asarray(s["bias_out"]),
            profile=profile.name,
            readout_scale=float(body.get("readout_scale", 1.0)),
            readout_mode=str(body.get("readout_mode", "mean")),
        )
    except KeyError as err:
        raise CheckpointError(f"{p}: spec.{err.args[0]}: missing") from None
    except ValidationError as err:
        raise CheckpointError(f"{p}: {err}") from None
    from rsnn_deploy.xylo.network import check_design_rules

    check_design_rules(net, profile)
    return net
