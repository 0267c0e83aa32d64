#!/usr/bin/env bash
# Train the reference models shipped in models/ with the project's own commands, then
# write their model cards. One thread each (the machine is shared); run from the repo root:
#
#   bash scripts/train_reference_models.sh            # all three
#   bash scripts/train_reference_models.sh mnist1d-rec-syn-loihi1   # just one
#
# Each run writes runs/reference/NAME/ (ignored by git); the best checkpoint is copied to
# models/NAME.{safetensors,json} and its card to models/NAME.md. The default model (the
# first) is also copied into rsnn_deploy/_models/ so that an installed package ships it.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
RSNN=${RSNN:-.venv/bin/rsnn-deploy}
OUT=runs/reference
mkdir -p "$OUT" models rsnn_deploy/_models

train_one() {
  local name=$1 target=$2; shift 2
  local args=("$@" --qat "$target" --quiet --overwrite -o "$OUT/$name")
  echo "== $name: rsnn-deploy train ${args[*]}"
  "$RSNN" train "${args[@]}"
  cp "$OUT/$name/model.safetensors" "models/$name.safetensors"
  cp "$OUT/$name/model.json" "models/$name.json"
  "$RSNN" model-card "models/$name" --target "$target" --quiet \
    --training-command "rsnn-deploy train ${args[*]}" -o "models/$name.md"
  chmod 644 "models/$name".*  # atomic writes create 0600 files; shipped files must be readable
}

want() { [ $# -eq 0 ] || [[ " $* " == *" $NAME "* ]]; }

# 1. The default model: MNIST-1D, recurrent with synaptic current, for Loihi 1 (voltage floor 0 as nengo-loihi).
NAME=mnist1d-rec-syn-loihi1
if want "$@"; then
  train_one $NAME loihi1 --task mnist1d --variant rec-syn --hidden 128 --tau-mem 10 --tau-syn 2 --v-floor 0 \
    --epochs 80 --batch-size 100 --lr 5e-3 --seed 0
  cp "models/$NAME.safetensors" "models/$NAME.json" rsnn_deploy/_models/
fi

# 2. MNIST-1D with adaptation for Loihi 2 as Lava runs it: ATRLIF (adaptive threshold, refractory state r,
#    no voltage reset; no floor). The card gets a Lava column (the lava backend, Python 3.10 side env).
#    --engine eager: the shipped weights came from the eager loop (the fast engine's ATRLIF loops came later;
#    same spikes, gradients equal only to float tolerance, so 80 epochs end elsewhere: val 0.850 vs 0.870).
NAME=mnist1d-rec-syn-adapt-loihi2
if want "$@"; then
  train_one $NAME loihi2 --task mnist1d --variant rec-syn-adapt --adapt-kind atrlif --tau-refr 5 --hidden 128 \
    --tau-mem 5 --tau-syn 2 --epochs 80 --batch-size 100 --lr 5e-3 --seed 0 --engine eager
fi

# 3. Sequential Fashion-MNIST by rows (28 steps x 336 channels: 4-level thermometer + edges), for Loihi 1:
#    the best float config (configs/sfmnist_row_rec_syn_edges_ttau.toml, 88.2 % float over 2 seeds) with
#    QAT, all 60k training samples, 35 epochs (~10 s each on one thread with the native loops).
NAME=sfmnist-row-rec-syn-loihi1
if want "$@"; then
  train_one $NAME loihi1 --task sfmnist-row --config configs/sfmnist_row_rec_syn_edges_ttau.toml \
    --variant rec-syn --hidden 128 --seed 0
fi
