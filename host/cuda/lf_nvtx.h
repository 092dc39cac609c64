/* lf_nvtx.h: NVTX ranges around load, upload, plan and apply; no-op macros in builds without NVTX.
 *
 * LF_RANGE_PUSH("name") / LF_RANGE_POP() must pair on the same thread (C has no RAII: pop on every
 * return path). NVTX3 is header-only; its headers are included as SYSTEM through CUDA::nvtx3
 * (they trip -Wpedantic otherwise, docs/architecture.md "Warnings").
 */
#ifndef LF_NVTX_H
#define LF_NVTX_H

#include "lorafuse/lf_config.h"

#if LF_HAVE_NVTX
#include <nvtx3/nvToolsExt.h>
#define LF_RANGE_PUSH(name) ((void)nvtxRangePushA(name))
#define LF_RANGE_POP() ((void)nvtxRangePop())
#define LF_MARK(name) nvtxMarkA(name)
#else
#define LF_RANGE_PUSH(name) ((void)0)
#define LF_RANGE_POP() ((void)0)
#define LF_MARK(name) ((void)0)
#endif

#endif
