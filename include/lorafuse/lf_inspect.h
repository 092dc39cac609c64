/* lf_inspect.h: what an adapter file is (`lorafuse inspect`), as a cJSON object that the CLI prints as
 * JSON or as text: algorithms and module counts per component, ranks, alphas (alpha == 0 warned, P1),
 * DoRA axes, base family with the evidence, trigger words (ss_tag_frequency folder names without the
 * "N_" repeat prefix, and a sidecar FILE.json's "activation text" / "trainedWords"), metadata, and,
 * given a model, matched and unmatched modules and every shape problem. */
#ifndef LF_INSPECT_H
#define LF_INSPECT_H

#include <cJSON.h>

#include "lorafuse/lf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* model_path may be NULL. On success *out is a new cJSON object (caller deletes). */
lf_status lf_inspect(const char *path, const char *model_path, cJSON **out);

#ifdef __cplusplus
}
#endif
#endif
