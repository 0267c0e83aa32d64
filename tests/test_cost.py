"""Operation counts, energy and latency (rsnn_deploy.cost) against hand counts and the profile's figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rsnn_deploy.cost import Connectivity, cost_of_counts, count_trace, measure_cost, measure_counts
from rsnn_deploy.errors import ValidationError
from rsnn_deploy.hardware import load_profile
from rsnn_deploy.trace import Trace

REPO = Path(__file__).resolve().parent.parent

W_IN = np.array([[64, 0], [0, 128], [64, 64]])  # [H=3, C=2]
W_REC = np.array([[0, 64, 0], [64, 0, 0], [-64, 0, 0]])  # post, pre: pre 0 -> {1, 2}, pre 1 -> {0}, pre 2 -> none
W_OUT = np.array([[1.0, 0.5, 0.0], [2.0, 0.0, 0.0]])  # [K=2, H]: fan-out 2, 1, 0
X = np.array([[[1, 0], [1, 1], [0, 1]]])  # [B=1, T=3, C]
Z = np.array([[[1, 0, 0], [0, 1, 1], [1, 0, 0]]], dtype=bool)
# states: neuron 2 at rest at step 0, neuron 1 at rest at step 2 (u = v = 0 and no spike)
U = np.array([[[5, 3, 0], [1, 2, 7], [0, 0, 4]]])
V = np.array([[[0, 9, 0], [8, 0, 0], [0, 0, 1]]])


def hand_trace() -> Trace:
    return Trace(spikes=Z, readout=np.zeros((1, 3, 2), np.float32), logits=np.zeros((1, 2)), current=U, voltage=V)


def test_counts_equal_hand_counts_per_source_and_core():
    conn = Connectivity.of(W_IN, W_REC, W_OUT, block_sizes=(2, 1))
    c = count_trace(conn, X, hand_trace())
    # input: channel 0 spikes twice -> neurons 0 (core 0), 2 (core 1); channel 1 twice -> neurons 1 (core 0), 2
    assert c.syn_input.tolist() == [[4, 4]]
    # recurrent, delivered at the next step: z[0] = {0} -> {1, 2}; z[1] = {1, 2} -> {0} (2 has no targets)
    assert c.syn_recurrent.tolist() == [[2, 1]]
    # readout consumes every step: neuron 0 spikes twice x 2 weights, neuron 1 once x 1, neuron 2 once x 0
    assert c.syn_readout.tolist() == [5]
    assert c.spikes.tolist() == [[3, 1]] and c.input_spikes.tolist() == [4]
    # active: not at rest; neuron-steps at rest: (t=0, n=2) and (t=2, n=1)
    assert c.active.tolist() == [[5, 2]] and c.inactive.tolist() == [[1, 1]]
    # NeuroBench MembraneUpdates: H at the first step + neuron-steps whose v changed afterwards
    # v: n0 0 -> 8 -> 0 (2), n1 9 -> 0 -> 0 (1), n2 0 -> 0 -> 1 (1)
    assert c.membrane_updates.tolist() == [3 + 4]
    # messages: a spike goes once to each core holding one of its targets (last step not delivered)
    # z[0] n0 (core 0) -> cores 0 and 1; z[1] n1 (core 0) -> core 0; n2 (core 1) -> nowhere
    assert c.spike_messages[0].tolist() == [[2, 1], [0, 0]]


def test_neurobench_metrics_of_hand_network():
    conn = Connectivity.of(W_IN, W_REC, W_OUT, block_sizes=(2, 1))
    c = count_trace(conn, X, hand_trace())
    out = cost_of_counts(c, None, connection_sparsity=conn.connection_sparsity, n_outputs=2, n_inputs=2)
    nb = out["neurobench"]
    assert nb["ActivationSparsity"] == pytest.approx(1 - 4 / 9)
    assert nb["SynapticOperations"]["Effective_ACs"] == 8 + 3 + 5
    assert nb["SynapticOperations"]["Dense"] == 3 * (2 * 3 + 3 * 3 + 3 * 2)
    # zeros: w_in 2 of 6, w_rec 6 of 9, w_out 3 of 6
    assert nb["ConnectionSparsity"] == pytest.approx(11 / 21)
    assert out["energy"]["available"] is False and "no hardware profile" in out["energy"]["reason"]


def _user_profile(tmp_path: Path, cost: str) -> Path:
    base = (REPO / "hardware" / "loihi1.toml").read_text()
    head = base.split("\n[cost]\n")[0]
    path = tmp_path / "mychip.toml"
    path.write_text(head.replace('name = "loihi1"', 'name = "mychip"') + "\n[cost]\n" + cost)
    return path


USER_COST = """source = "made-up figures for a test"
synaptic_op_pj = 2.0
neuron_update_active_pj = 10.0
neuron_update_inactive_pj = 1.0
spike_within_tile_pj = 0.5
tile_hop_east_west_pj = 3.0
tile_hop_north_south_pj = 4.0
synaptic_op_ns = 1.0
neuron_update_active_ns = 2.0
neuron_update_inactive_ns = 0.5
spike_within_tile_ns = 0.1
tile_hop_east_west_ns = 0.2
tile_hop_north_south_ns = 0.3
barrier_sync_ns = [100.0, 400.0]
barrier_sync_tiles = 8
cores_per_tile = 1
"""


def test_energy_and_latency_are_counts_times_a_user_profiles_figures(tmp_path):
    prof = load_profile(_user_profile(tmp_path, USER_COST))
    conn = Connectivity.of(W_IN, W_REC, W_OUT, block_sizes=(2, 1))
    c = count_trace(conn, X, hand_trace(), prof.cost)
    out = cost_of_counts(c, prof)
    # chip synaptic events 4 + 4 + 2 + 1 = 11; active 7, inactive 2;
    # messages: core 0 -> core 0 twice (within tile), core 0 -> core 1 once (one tile apart: 1 E-W hop)
    energy_pj = 11 * 2.0 + 7 * 10.0 + 2 * 1.0 + 2 * 0.5 + 1 * 3.0
    assert out["energy"]["per_inference_nj"]["mean"] == pytest.approx(energy_pj / 1e3)
    # per step and core: events (input at t, recurrent from t-1), active, inactive
    # core 0 (n0, n1): t0 ev 1 (ch0->n0), act 2 -> 1 + 4 = 5;  t1 ev 2 (ch0, ch1) + 1 (n0->n1) = 3, act 2 -> 7;
    #                  t2 ev 1 (ch1->n1) + 1 (n1->n0) = 2, act 1, idle 1 -> 2 + 2 + 0.5 = 4.5
    # core 1 (n2):     t0 ev 1, idle 1 -> 1.5;  t1 ev 2 + 1 (n0->n2) = 3, act 1 -> 5;  t2 ev 1, act 1 -> 3
    crit = 5 + 7 + 4.5
    sync = 400.0  # two cores, one core per tile: more than one tile -> the upper figure
    assert out["latency"]["per_inference_us"]["mean"] == pytest.approx((crit + 3 * sync) / 1e3)
    assert out["latency"]["barrier_sync_ns_per_step"] == sync


def test_loihi1_cost_table_is_davies_table_2():
    cost = load_profile("loihi1").cost
    assert (cost.synaptic_op_pj, cost.neuron_update_active_pj, cost.neuron_update_inactive_pj) == (23.6, 81.0, 52.0)
    assert (cost.synaptic_op_ns, cost.neuron_update_active_ns, cost.neuron_update_inactive_ns) == (3.5, 8.4, 5.3)
    assert (cost.spike_within_tile_pj, cost.tile_hop_east_west_pj, cost.tile_hop_north_south_pj) == (1.7, 3.0, 4.0)
    assert cost.barrier_sync_ns == (113.0, 465.0) and cost.barrier_sync_tiles == 32
    assert "Davies" in cost.source and "Table 2" in cost.source


def test_loihi2_reports_operations_but_no_energy(tmp_path):
    from tests.test_nengo_build import inputs, make_qnet

    qnet = make_qnet(3, profile="loihi2")
    out = measure_cost(qnet, inputs(3, 4, 20, qnet.n_inputs), "loihi2")
    assert out["energy"] == {"available": False, "reason": "no per-operation energy is published for Loihi 2"}
    assert out["latency"]["available"] is False
    assert out["synaptic_events"]["total"]["input"] > 0
    assert out["neuron_updates"]["active_per_sample"]["mean"] > 0


@pytest.mark.parametrize(
    ("cost", "match"),
    [
        ('source = "x"\nsynaptic_op_pj = 1.0\n', r"mychip.toml: cost.neuron_update_active_pj: required when"),
        ('synaptic_op_pj = 1.0\n', r"mychip.toml: cost.source: Field required"),
        ('source = "x"\n', r"mychip.toml: cost.energy_unset_reason: required"),
        (USER_COST.replace("synaptic_op_pj = 2.0", "synaptic_op_pj = -2.0"), r"cost.synaptic_op_pj: .*greater"),
        (USER_COST + 'energy_unset_reason = "x"\n', r"cost.energy_unset_reason: must be absent"),
        (USER_COST.replace("[100.0, 400.0]", "[500.0, 400.0]"), r"cost.barrier_sync_ns: must be"),
        (USER_COST + "joules = 1\n", r"cost.joules: Extra inputs"),
    ],
)
def test_bad_cost_tables_name_file_and_key(tmp_path, cost, match):
    with pytest.raises(ValidationError, match=match):
        load_profile(_user_profile(tmp_path, cost))


def test_count_trace_refuses_mismatched_shapes():
    conn = Connectivity.of(W_IN, W_REC, W_OUT)
    with pytest.raises(ValidationError, match="count_trace: network has 2 inputs"):
        count_trace(conn, np.zeros((1, 3, 5)), hand_trace())


def test_totals_are_the_sum_over_chunks():
    from tests.test_nengo_build import inputs, make_qnet

    qnet = make_qnet(1, blocks=(16, 14), h=30)
    x = inputs(1, 9, 25, qnet.n_inputs)
    whole = measure_counts(qnet, x, "loihi1", chunk=100)
    parts = measure_counts(qnet, x, "loihi1", chunk=4)
    for name in ("syn_input", "syn_recurrent", "syn_readout", "spikes", "active", "spike_messages"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(parts, name))
    np.testing.assert_allclose(whole.critical_path_ns, parts.critical_path_ns)



def test_counts_of_a_recorded_trace_equal_a_fresh_emulator_run():
    """``verify`` counts the emulator trace its agreement checks recorded; the counts must be
    those of ``measure_counts``' own emulator run, and a trace without states is refused."""
    from rsnn_deploy.emulator import run as emulate
    from tests.test_nengo_build import inputs, make_qnet

    qnet = make_qnet(1, blocks=(16, 14), h=30)
    x = inputs(1, 9, 25, qnet.n_inputs)
    prof = load_profile("loihi1")
    fresh = measure_counts(qnet, x, prof, chunk=4)
    reused = measure_counts(qnet, x, prof, chunk=4, trace=emulate(qnet, x, prof, record_states=True))
    assert fresh.syn_chip.sum() > 0
    for name in ("input_spikes", "syn_input", "syn_recurrent", "syn_readout", "spikes", "spike_messages", "active",
                 "inactive", "membrane_updates", "critical_path_ns"):
        np.testing.assert_array_equal(getattr(fresh, name), getattr(reused, name), err_msg=name)
    with pytest.raises(ValidationError, match=r"measure_counts\.trace"):
        measure_counts(qnet, x, prof, trace=emulate(qnet, x, prof, record_states=False))


@pytest.mark.nengo_loihi
@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning",
                            "ignore:This version of `nengo_loihi`:UserWarning")
@pytest.mark.parametrize("case", [dict(), dict(blocks=(16, 14), h=30), dict(rec_exp=None)])
def test_counts_identical_between_emulator_and_nengo_loihi(case):
    pytest.importorskip("nengo_loihi", reason="nengo-loihi is not installed")
    from rsnn_deploy.backends.nengo import run_nengo_loihi
    from rsnn_deploy.emulator import run as emulate
    from tests.test_nengo_build import inputs, make_qnet

    qnet = make_qnet(2, **case)
    x = inputs(2, 3, 30, qnet.n_inputs)
    prof = load_profile("loihi1")
    conn = Connectivity.from_qnet(qnet)
    a = count_trace(conn, x, emulate(qnet, x, prof, record_states=True), prof.cost)
    b = count_trace(conn, x, run_nengo_loihi(qnet, x, record_states=True), prof.cost)
    assert a.syn_chip.sum() > 0
    for name in ("syn_input", "syn_recurrent", "syn_readout", "spikes", "spike_messages", "active", "inactive",
                 "membrane_updates", "critical_path_ns"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
