/* keymap_unet.h: what other folders may use of the U-Net key naming (keymap_unet.c): the LDM key
 * root and the LDM -> diffusers name derivation that reading a diffusers unet/ folder needs
 * (host/runtime/model_dir.c). The rest of the key map's machinery is keymap_internal.h (private). */
#ifndef LF_KEYMAP_UNET_H
#define LF_KEYMAP_UNET_H

#include <stddef.h>

#include "lorafuse/lf_status.h"

#define LF_KM_UNET_ROOT "model.diffusion_model."

/* For UNet tensor keys "model.diffusion_model.<P>.<weight|bias>": out[i] = malloc'd diffusers name
 * "<D>.<weight|bias>", or NULL when the key has none (free each). Used to read diffusers folders. */
lf_status lf_km_unet_diffusers_names(const char *const *keys, size_t n, char **out);

#endif
