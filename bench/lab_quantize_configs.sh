b() { ./build/llmk bench quantize --reps 30 "$@" | sed 's/  *(/ (/'; }
echo "--- per-row configs (tpr vpt)"
for cfg in "1024 1" "512 2" "256 4" "128 8"; do set -- $cfg
  for m in 1 16 128; do echo -n "tpr=$1 vpt=$2 "; LLMK_QUANT_TPR=$1 LLMK_QUANT_VPT=$2 b --scaling row --m $m --k 8192; done
  echo -n "tpr=$1 vpt=$2 "; LLMK_QUANT_TPR=$1 LLMK_QUANT_VPT=$2 b --scaling row --m 16384 --k 8192; done
for cfg in "16 1" "8 2" "4 4" "2 8"; do set -- $cfg; echo -n "1x128 tpr=$1 vpt=$2 "; LLMK_QUANT_TPR=$1 LLMK_QUANT_VPT=$2 b --scaling block --block 1x128 --m 16 --k 8192; done
echo "--- per-tensor small: one CTA vs three kernels"
for m in 1 4 16 64; do for lim in 0 1000000; do echo -n "one_cta_max=$lim "; LLMK_TENSOR_ONE_CTA_MAX=$lim b --scaling tensor --m $m --k 8192; done; done
