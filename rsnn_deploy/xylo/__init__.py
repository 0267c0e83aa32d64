"""SynSense Xylo (Audio 2, IMU): profiles, design rules, quantizer, our batched integer emulator and
the vendor's ``xylosim`` simulator behind one result type. Everything Xylo lives in this package;
the rest of rsnn-deploy reaches it through :func:`rsnn_deploy.profiles.is_xylo_profile`.
"""

from rsnn_deploy.semantics.xylo_profile import XYLO_PROFILES, XyloProfile, load_xylo_profile
from rsnn_deploy.xylo.emulator import XyloRun, run
from rsnn_deploy.xylo.network import XyloNetwork, check_design_rules

__all__ = [
    "XYLO_PROFILES",
    "XyloNetwork",
    "XyloProfile",
    "XyloRun",
    "check_design_rules",
    "load_xylo_profile",
    "run",
]
