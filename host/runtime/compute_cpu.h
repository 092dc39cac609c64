/* compute_cpu.h: the CPU compute backend (host/base/compute.h over kernels/cpu/nn/lf_nn.h).
 *
 * lf_compute_cpu() is one static, process-wide table: backend memory is host memory (malloc), so a
 * caller's host arrays can be passed as activations directly, and every op gives lf_nn's bytes. The
 * public model functions (lf_unet_forward, lf_clip_forward, lf_vae_decode, ...) run on it. It holds no
 * state: destroy, sync and forget do nothing, and copying the table (a test wrapping one entry) gives
 * a working backend.
 */
#ifndef LF_COMPUTE_CPU_H
#define LF_COMPUTE_CPU_H

#include "host/base/compute.h"

lf_compute *lf_compute_cpu(void);

#endif
