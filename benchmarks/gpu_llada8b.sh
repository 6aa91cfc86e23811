#!/usr/bin/env bash
# LLaDA-8B-shape GPU benchmarks in one go (issue 14, "GPU" goal): prepared to run once on a GPU machine.
#
#   OUT=/tmp/out bash benchmarks/gpu_llada8b.sh          # PYTHON=... to choose the interpreter
#
# Writes under $OUT (default ./gpu-results): one .txt (stdout + stderr) per command, JSON where the benchmark
# has --json, and env.txt (GPU, driver, torch). Every command runs under `timeout` (seconds below) so one hang
# cannot eat the whole device budget; a failed command does not stop the others; the exit status is the number
# of failed commands.
#   1. spg bench decode --shape llada-8b, batch 6, prompt 200, gen 256, block 32, 128 steps, bf16: every mode
#      against the reference (2 reference rows: the reference decodes one row at a time);
#   2. spg bench train-step --shape llada-8b --batch 6 --prompt-length 200 --gen-length 256 (bf16, full
#      fine-tuning; if that fails, e.g. out of memory, again with --grad-checkpointing);
#   3. spg bench decode --compile on the two fastest cache modes.
set -u
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
# Timeouts are caps, not expectations; together they fit one 600-second device call.
T_DECODE=${T_DECODE:-170}
T_TRAIN=${T_TRAIN:-130}
T_COMPILE=${T_COMPILE:-120}
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
failed=0

{ date -u +%Y-%m-%dT%H:%M:%SZ; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1; } > "$OUT/env.txt"

run() {  # run NAME TIMEOUT ARGS...: spg ARGS... under timeout, output to $OUT/NAME.txt
  local name=$1 limit=$2; shift 2
  echo "== $name: spg $*" | tee "$OUT/$name.txt"
  timeout --kill-after=10 "$limit" "$PYTHON" -m spg_lib.cli "$@" >> "$OUT/$name.txt" 2>&1
  local rc=$?
  echo "== $name: exit $rc" | tee -a "$OUT/$name.txt"
  tail -n 12 "$OUT/$name.txt"
  return $rc
}

# 1. the rollout engine against the reference (goal: fastest mode >= 10x the reference's tokens/s)
DEC=(bench decode --device cuda --shape llada-8b --batch-size 6 --prompt-length 200 --gen-length 256 --block-length 32
     --steps 128 --ref-rows 2)
run decode_llada8b "$T_DECODE" "${DEC[@]}" --json "$OUT/decode_llada8b.json" || failed=$((failed + 1))

# 2. one SPG optimizer step (goal: loss forward + backward >= 35 % of the measured bf16 matmul peak)
TS=(bench train-step --shape llada-8b --device cuda --dtype bfloat16 --batch 6 --prompt-length 200 --gen-length 256
    --num-mc 2 --block-length 32 --steps 3 --warmup 1)
if ! run train_step_llada8b "$T_TRAIN" "${TS[@]}" --json "$OUT/train_step_llada8b.json"; then
  run train_step_llada8b_gc "$T_TRAIN" "${TS[@]}" --grad-checkpointing --json "$OUT/train_step_llada8b_gc.json" \
    || failed=$((failed + 1))
fi

# 3. the torch.compile'd cache modes (compilation in an untimed warm-up, its time printed)
run decode_llada8b_compile "$T_COMPILE" "${DEC[@]}" --modes dual,dual+threshold+early-stop --compile \
  --json "$OUT/decode_llada8b_compile.json" || failed=$((failed + 1))

echo "failed commands: $failed"
exit "$failed"
