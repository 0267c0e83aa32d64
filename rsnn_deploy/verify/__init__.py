"""The parity verifier: run every backend on the same encoded inputs and say, number by number, what survives.

:func:`verify` quantizes a checkpoint (or takes a quantized network), runs the chosen
backends on one split through the :class:`~rsnn_deploy.backends.Backend` protocol only,
and returns a report (written by :mod:`rsnn_deploy.report` as ``report.json``,
``report.md`` and PNG figures):

- accuracy per backend with Wilson 95 % intervals, and the gaps along
  ``torch-float -> torch-fakequant -> emulator -> nengo-loihi``, each measured on the
  samples both backends ran;
- spike agreement of every other integer backend with the emulator: anything below
  100 % is a bug, reported with the first divergent sample, step, neuron and variable;
- float vs emulator: first divergent step, per-neuron rate correlation, membrane RMSE
  in float units (integer ``v`` divided by the block's ``float_scale``);
- quantization summary (effective time constants, weight bits), resources, wall time.

Slow backends (nengo, nengo-loihi: ~2-3k steps/s; lava: Lava 0.10's own processes,
about 0.2 s a sample) run on the first ``slow_limit`` samples; fast ones on the whole
split (or ``limit``). By default ``nengo-loihi`` runs for loihi1 and ``lava`` for loihi2;
each is skipped with its reason where it does not apply or cannot run here.

:func:`emulated_accuracy` is the short path for hardware-aware tuning: quantize and
run the emulator on the validation split the training used.

Modules: ``_inputs`` (task, splits, target, quantization of a checkpoint), ``_compare``
(intervals, gaps, agreement, divergence), ``_run`` (:func:`verify`), ``_report`` (the
report document, ``--fail-over``), ``_accuracy`` (:func:`emulated_accuracy`).
"""

from rsnn_deploy.verify._accuracy import emulated_accuracy
from rsnn_deploy.verify._compare import GAP_CHAIN, INTEGER_REFERENCE, agreement, float_vs_emulator, wilson_interval
from rsnn_deploy.verify._inputs import (
    DEFAULT_MODEL,
    calibration_input,
    default_checkpoint,
    evaluation_split,
    quantize_checkpoint,
    target_of,
    task_of,
    training_part,
)
from rsnn_deploy.verify._report import REPORT_FORMAT, REPORT_VERSION, GapExceededError, VerifyResult, check_fail_over
from rsnn_deploy.verify._run import DEFAULT_BACKENDS, verify

__all__ = [
    "DEFAULT_BACKENDS",
    "DEFAULT_MODEL",
    "GAP_CHAIN",
    "INTEGER_REFERENCE",
    "REPORT_FORMAT",
    "REPORT_VERSION",
    "GapExceededError",
    "VerifyResult",
    "agreement",
    "calibration_input",
    "check_fail_over",
    "default_checkpoint",
    "emulated_accuracy",
    "evaluation_split",
    "float_vs_emulator",
    "quantize_checkpoint",
    "target_of",
    "task_of",
    "training_part",
    "verify",
    "wilson_interval",
]
