#!/usr/bin/env bash
# One prepared check of training on one GPU (H100/H200), within a total time budget (default 345 s):
#   - train_throughput at batch 8 and 32, 30 s clips, bf16, with and without compile; the
#     per-step-recompute recipe at batch 8 in the same runs (the speedup goal);
#   - DPO memory at 30 s: two 30 s pairs, ours / ours with checkpointing / the two-model recipe;
#   - the training command line, supervised and preference, on a random musicgen-small-shaped model;
#   - generation throughput with an adapter: a batch of 8 samples of 30 s, bf16 + static cache +
#     compile + the adapter merged (bench/generation_throughput.py);
#   - with what time is left: batch 32 compiled, and batch 8 without LoRA dropout.
# Each part runs under its own `timeout` (at most what is left of the budget), so one failure or
# overrun does not lose the others' figures; the parts that matter most for the goals run first.
# Every part prints one JSON line on stdout, {"part", "rc", "seconds", "result"}, also written to
# $OUT/gpu_check.jsonl; each part's full output and log go to $OUT/gpu_check_logs.tar.gz ($OUT
# defaults to ./gpu_check_out).
#
#     bash bench/gpu_check.sh            # GPU_CHECK_SECONDS=345 to change the budget
#
# The GPU machine's python lacks some of our dependencies: wheels in .whl/ are installed first.
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_check_out}"
WORK=$(mktemp -d /tmp/gpu_check.XXXX)
LOGS="$WORK/logs"
DATA="$WORK/data"
mkdir -p "$OUT" "$LOGS" "$DATA"
DEADLINE=$(( $(date +%s) + ${GPU_CHECK_SECONDS:-345} ))
PYTHON=python3
exec > >(tee "$OUT/gpu_check.jsonl")

if compgen -G ".whl/*.whl" > /dev/null; then
    $PYTHON -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl > "$LOGS/pip.log" 2>&1 \
        || echo '{"part": "install wheels", "rc": 1}'
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# part NAME CAP_SECONDS COMMAND...: run COMMAND (stdout to $LOGS/NAME.json, stderr to $LOGS/NAME.log)
# under a timeout of CAP_SECONDS or what is left of the budget, whichever is less.
part() {
    local name=$1 cap=$2
    shift 2
    local left=$(( DEADLINE - $(date +%s) ))
    local limit=$(( cap < left ? cap : left ))
    if (( limit < 10 )); then
        echo "{\"part\": \"$name\", \"rc\": null, \"skipped\": \"time budget spent\"}"
        return
    fi
    local started
    started=$(date +%s)
    timeout --kill-after=5 "$limit" "$@" > "$LOGS/$name.json" 2> "$LOGS/$name.log"
    local rc=$?
    $PYTHON - "$name" "$rc" "$(( $(date +%s) - started ))" "$LOGS/$name.json" "$LOGS/$name.log" <<'PY'
import json, sys
name, rc, seconds, path, log = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
text = open(path).read().strip()
try:
    result = json.loads(text)
except ValueError:  # JSON lines (the training command line, the generation benchmark), or nothing
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    if all("type" in line for line in lines):  # the training command line: its summary lines
        result = [line for line in lines if line["type"] in ("started", "completed", "failed")]
        result += [line for line in lines if line["type"] == "step"][-2:]
    else:
        result = lines
report = {"part": name, "rc": rc, "seconds": seconds, "result": result}
if rc != 0:
    report["log_tail"] = open(log).read()[-600:]
print(json.dumps(report), flush=True)
PY
}

BENCH="$PYTHON bench/train_throughput.py --device cuda --precision bf16 --seconds 30 --steps 3"
part throughput-b8 90 $BENCH --batch-size 8 --compile off --parts throughput
# Compilation takes a minute or two per shape.
part throughput-b8-compiled 150 $BENCH --batch-size 8 --compile on --parts throughput
part dpo-30s 90 $BENCH --parts dpo --dpo-seconds 30 --dpo-pairs 2
part generate-b8-30s 170 $PYTHON bench/generation_throughput.py --shape small --device cuda --seconds 30 \
    --batch-sizes 8 --repeats 1 --variants bf16+static+compile+merge
part throughput-b32 90 $BENCH --batch-size 32 --compile off --parts throughput --recipes ours

# The command line on a random musicgen-small-shaped model and four 30 s clips (two preference pairs).
part write-model 60 $PYTHON bench/train_throughput.py --save-model "$DATA/model"
$PYTHON - "$DATA" <<'PY'
import json, sys
from pathlib import Path
import numpy as np, soundfile as sf
data = Path(sys.argv[1])
rng = np.random.default_rng(0)
t = np.arange(30 * 32_000) / 32_000
for i in range(4):
    tone = 0.3 * np.sin(2 * np.pi * 110 * (i + 1) * t) + 0.05 * rng.standard_normal(t.size)
    sf.write(data / f"clip{i}.wav", tone.astype(np.float32), 32_000)
rows = [{"prompt": f"tone {i}", "audio_path": f"clip{i}.wav"} for i in range(4)]
(data / "supervised.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
rows = [{"prompt": f"tone {i}", "chosen_path": f"clip{2 * i}.wav", "rejected_path": f"clip{2 * i + 1}.wav"}
        for i in range(2)]
(data / "preference.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
PY
CLI="$PYTHON -m model.training.cli train --base-model $DATA/model --device cuda --cache-dir $DATA/cache"
part cli-supervised 150 $CLI --dataset "$DATA/supervised.jsonl" --type supervised --output "$DATA/sup" \
    --name sup --batch-size 4 --max-steps 6
part cli-preference 60 $CLI --dataset "$DATA/preference.jsonl" --type preference --output "$DATA/pref" \
    --name pref --batch-size 2 --max-steps 3 --compile off --activation-checkpointing
part generate-b1-10s 90 $PYTHON bench/generation_throughput.py --shape small --device cuda --seconds 10 \
    --batch-sizes 1 --repeats 1 --variants fp32,bf16+static+compile+merge

part throughput-b32-compiled 170 $BENCH --batch-size 32 --compile on --parts throughput --recipes ours
# LoRA dropout's copies were ~11 % of GPU time in a profile: what dropping it would gain.
part throughput-b8-no-lora-dropout 90 $BENCH --batch-size 8 --compile off --parts throughput --recipes ours \
    --lora-dropout 0
tar czf "$OUT/gpu_check_logs.tar.gz" -C "$WORK" logs
rm -rf "$WORK"
