/* clora/clora.h — the whole public API of clora.
 *
 * clora: LoRA fine-tuning and inference on any OpenCL device. Include this
 * one header; link with clora (CMake: find_package(clora), target
 * clora::clora; pkg-config: clora).
 */
#ifndef CLORA_CLORA_H
#define CLORA_CLORA_H

#include "clora/version.h"
#include "clora/status.h"
#include "clora/dtype.h"
#include "clora/device.h"
#include "clora/buffer.h"
#include "clora/linear.h"
#include "clora/lora.h"
#include "clora/dora.h"
#include "clora/reference.h"
#include "clora/loss.h"
#include "clora/file.h"
#include "clora/safetensors.h"
#include "clora/gguf.h"
#include "clora/model.h"
#include "clora/adapter.h"
#include "clora/hf_save.h"
#include "clora/train.h"
#include "clora/transformer.h"
#include "clora/llama.h"
#include "clora/generate.h"
#include "clora/tokenizer.h"

#endif /* CLORA_CLORA_H */
