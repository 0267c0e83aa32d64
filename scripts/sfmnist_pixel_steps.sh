#!/usr/bin/env bash
# The sfmnist-pixel step table of EXPERIMENTS.md (issue 17), on its shrunk budget (2,000 training images),
# as it ran: three processes at once, each with a subset of the arms, sharing one working folder and one
# report (each run keeps the arms the others left in it). Resumable: rerun it to continue or to re-read.
#   scripts/sfmnist_pixel_steps.sh            # the step table: results/steps-sfmnist-pixel/
#   scripts/sfmnist_pixel_steps.sh spread     # the recurrent arms re-tuned with sampler seed 1, then the spread
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
rsnn=${RSNN:-.venv/bin/rsnn-deploy}
common=(--task sfmnist-pixel --limit 2000 --final-limit 2000 --trials 24 --epochs 6 --seeds 3 --final-epochs 20
        --space configs/search_space_memory.toml --target loihi1,loihi2 --threads 1)
mkdir -p runs
if [ "${1:-}" = spread ]; then
  s1=("${common[@]}" --no-control --sampler-seed 1 --study-prefix steps-sfmnist-pixel-s1 -o runs/sfmnist-pixel-s1
      --report-dir results/steps-sfmnist-pixel-s1)
  "$rsnn" experiment steps "${s1[@]}" --variants rec-adapt > runs/pixel-s1-ra.log 2>&1 &
  sleep 15
  "$rsnn" experiment steps "${s1[@]}" --variants rec-syn-adapt > runs/pixel-s1-rsa.log 2>&1 &
  wait
  "$rsnn" experiment steps "${s1[@]}" --variants rec-syn > runs/pixel-s1-rs.log 2>&1 &
  sleep 15
  "$rsnn" experiment steps "${s1[@]}" --variants rec > runs/pixel-s1-r.log 2>&1 &
  wait
  "$rsnn" experiment spread results/steps-sfmnist-pixel/results.json results/steps-sfmnist-pixel-s1/results.json \
      --report-dir results/steps-sfmnist-pixel-spread
  exit
fi
out=(-o runs/sfmnist-pixel --report-dir results/steps-sfmnist-pixel)
"$rsnn" experiment steps "${common[@]}" "${out[@]}" --no-control --variants rec-adapt,rec-syn-adapt \
    > runs/pixel-adapt.log 2>&1 &
sleep 20
"$rsnn" experiment steps "${common[@]}" "${out[@]}" --no-control --variants lif,rec,rec-syn --lsnn-published \
    > runs/pixel-fast.log 2>&1 &
sleep 20
"$rsnn" experiment steps "${common[@]}" "${out[@]}" --variants '' > runs/pixel-control.log 2>&1 &
wait
