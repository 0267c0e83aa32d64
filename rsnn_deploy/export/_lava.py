"""``export --format lava``: a QuantizedNetwork as a bundle that Lava's own processes run.

The bundle (a folder) holds ``network.json`` (the integers in Lava's own terms, format
below and in ``docs/lava.md``), ``run_lava.py`` (a copy of
:mod:`rsnn_deploy.export.lava_run`, needing only numpy and lava-nc) and ``README.md``.
The ``lava`` backend writes the same bundle and runs the same script, so what is
shipped is what was checked against the emulator.

Mapping (Lava 0.10, ``select_tag="fixed_pt"``)
---------------------------------------------
- Neurons are split into groups with equal parameters, one process each, because
  ``LIF`` holds one ``du``, ``dv``, ``vth`` and ``ATRLIF`` one ``delta_*``, ``theta_0``,
  ``theta_step`` per process (biases stay per neuron: ``bias_mant << bias_exp``).
- A network without ``decay_r`` is ``LIF`` (``vth = qnet.vth >> 6``); with it, ``ATRLIF``
  (``theta_0 = vth >> 6``, ``theta_step >> 6``, decays ``d / 4096``).
- Each input->group and group->group tile is one ``Dense`` in ``sign_mode=MIXED``
  (an all-negative matrix would otherwise clip -256 to -255) with its own
  ``weight_exp = e`` and weights ``W = w / 2**(e + 6)``: even (MIXED truncates the
  lowest bit) in ``[-256, 254]``, so that ``(sum W) << e << 6`` is the integer sum ``q``.
  All-zero recurrent tiles are left out.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from rsnn_deploy import semantics
from rsnn_deploy.errors import UnsupportedError, ValidationError
from rsnn_deploy.hardware import HardwareProfile, load_profile
from rsnn_deploy.io import atomic_path
from rsnn_deploy.qnet import QuantizedNetwork, weight_exponent

__all__ = ["BUNDLE_FILES", "BUNDLE_FORMAT", "RUNNER", "export_lava", "lava_network"]

# the files a bundle folder holds (what `export --format lava` writes, and refuses to replace without --overwrite)
BUNDLE_FILES: tuple[str, ...] = ("network.json", "run_lava.py", "README.md")

BUNDLE_FORMAT = "rsnn-deploy/lava-bundle"
RUNNER = Path(__file__).with_name("lava_run.py")
_SHIFT = 6  # Lava's vth_shift / act_shift / theta_unity


def _bias_parts(bias: np.ndarray, profile: HardwareProfile) -> tuple[list[int], list[int]]:
    """``bias = mant << exp`` with the smallest exponent, per neuron."""
    fmt = profile.bias
    mants, exps = [], []
    for b in bias.tolist():
        for e in range(fmt.exponent_max + 1):
            m = b >> e
            if (m << e) == b and fmt.mantissa_min <= m <= fmt.mantissa_max:
                mants.append(int(m))
                exps.append(e)
                break
        else:
            raise ValidationError(f"QuantizedNetwork.bias: {b} is not mantissa << exponent on {profile.name}")
    return mants, exps


def _dense(w: np.ndarray, profile: HardwareProfile, what: str) -> dict[str, Any]:
    e = weight_exponent(w, profile.weight)
    if e is None:
        raise ValidationError(f"QuantizedNetwork.{what}: not representable as one Lava Dense (8-bit, one exponent)")
    s = e + _SHIFT
    lava_w = (w >> s) if s >= 0 else (w << -s)
    if not np.array_equal(lava_w * 2.0**s, w) or lava_w.min(initial=0) < -256 or lava_w.max(initial=0) > 254 or \
            np.any(lava_w % 2):
        raise ValidationError(f"QuantizedNetwork.{what}: no even 8-bit Lava weights for exponent {e}")
    return {"weight_exp": int(e), "weights": lava_w.astype(np.int64).tolist()}


def lava_network(qnet: QuantizedNetwork, profile: HardwareProfile | None = None) -> dict[str, Any]:
    """The ``network.json`` document of ``qnet`` (loihi2 semantics only)."""
    prof = profile or load_profile(qnet.profile)
    if semantics.for_profile(prof).chip_backend != "lava":
        raise UnsupportedError(
            f"export --format lava: runs Lava's LIF/ATRLIF (profile loihi2); the network is quantized for "
            f"{qnet.profile!r}; re-quantize with --profile loihi2"
        )
    if qnet.adapt_kind == "threshold":
        raise UnsupportedError(
            "QuantizedNetwork.theta_step: threshold adaptation with reset is not a Lava process; "
            "train with adapt_kind = \"atrlif\""
        )
    h = qnet.n_hidden
    atr = qnet.is_atrlif
    zeros = np.zeros(h, dtype=np.int64)
    cols: dict[str, np.ndarray]
    if atr:
        cols = {"delta_i": qnet.decay_u, "delta_v": qnet.decay_v, "delta_theta": qnet.decay_theta,
                "delta_r": qnet.decay_r, "theta_0": qnet.vth >> _SHIFT,
                "theta_step": (qnet.theta_step if qnet.theta_step is not None else zeros) >> _SHIFT}
    else:
        cols = {"du": qnet.decay_u, "dv": qnet.decay_v, "vth": qnet.vth >> _SHIFT}
    keys = np.stack([np.asarray(v, dtype=np.int64) for v in cols.values()], axis=1)
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # groups in order of their first neuron
    mants, exps = _bias_parts(qnet.bias, prof)
    groups = []
    members = []
    for gi in order:
        idx = np.flatnonzero(inverse.reshape(-1) == gi)
        members.append(idx)
        row = keys[idx[0]]
        groups.append({
            "model": "ATRLIF" if atr else "LIF",
            "neurons": idx.tolist(),
            "params": {k: int(v) for k, v in zip(cols, row, strict=True)},
            "bias_mant": [mants[i] for i in idx],
            "bias_exp": [exps[i] for i in idx],
        })
    dense = []
    for j, post in enumerate(members):
        dense.append({"pre": "input", "post": j, **_dense(qnet.w_in[post], prof, f"w_in (group {j})")})
    if qnet.w_rec is not None:
        for j, post in enumerate(members):
            for i, pre in enumerate(members):
                tile = qnet.w_rec[post][:, pre]
                if tile.any():
                    dense.append({"pre": i, "post": j, **_dense(tile, prof, f"w_rec (group {i} -> {j})")})
    return {
        "format": BUNDLE_FORMAT,
        "format_version": 1,
        "lava": "lava-nc 0.10.0, Loihi2SimCfg(select_tag='fixed_pt')",
        "profile": qnet.profile,
        "profile_sha256": qnet.profile_sha256,
        "n_inputs": qnet.n_inputs,
        "n_hidden": h,
        "input_latency": int(qnet.input_latency),
        "groups": groups,
        "dense": dense,
        # the input code (what turns raw signals into these inputs), as every export records it
        **({"input_encoder": dict(qnet.encoder)} if qnet.encoder is not None else {}),
    }


_README = """# Lava bundle (rsnn-deploy)

Runs this network on Lava's own fixed-point process models (lava-nc 0.10, Python 3.10):

    python3.10 -m venv V && V/bin/pip install lava-nc==0.10.0
    V/bin/python run_lava.py network.json spikes.npz out.npz [--record-states] [--chunk N]

`spikes.npz` holds `spikes`, 0/1 `[B, T, {n_inputs}]`; `out.npz` gets `spikes` bool `[B, T, {n_hidden}]`
(output step t integrates input step t; Lava's Dense delay of {lat} step is dropped).
`network.json` holds the integers: {n_groups} {model} group(s) and {n_dense} Dense connection(s)
(sign_mode MIXED, weights even in [-256, 254], one weight_exp each). Format: docs/lava.md of rsnn-deploy.
Checked bit-exact against rsnn-deploy's emulator by its `lava` backend, which runs this same script.
"""


def export_lava(qnet: QuantizedNetwork, out_dir: str | Path, profile: HardwareProfile | None = None) -> Path:
    """Write the bundle folder ``out_dir`` (network.json, run_lava.py, README.md); returns it.

    Refuses to write into a folder holding anything but a previous bundle's files.
    """
    out = Path(out_dir)
    doc = lava_network(qnet, profile)
    names = set(BUNDLE_FILES)
    if out.exists():
        if not out.is_dir():
            raise ValidationError(f"{out}: --out must be a folder for --format lava (a file is there)")
        other = sorted(p.name for p in out.iterdir() if p.name not in names)
        if other:
            raise ValidationError(f"{out}: folder holds other files ({other[0]}, ...); choose an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "network.json") as tmp:
        tmp.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    with atomic_path(out / "run_lava.py") as tmp:
        shutil.copyfile(RUNNER, tmp)
    readme = _README.format(n_inputs=doc["n_inputs"], n_hidden=doc["n_hidden"], lat=doc["input_latency"],
                            n_groups=len(doc["groups"]), model=doc["groups"][0]["model"], n_dense=len(doc["dense"]))
    with atomic_path(out / "README.md") as tmp:
        tmp.write_text(readme)
    return out
