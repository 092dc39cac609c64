/* lf_inspect.h: what an adapter file is (`lorafuse inspect`), as a JSON report that the CLI prints as
 * is or as text: algorithms and module counts per component, ranks, alphas (alpha == 0 warned, P1),
 * DoRA axes, base family with the evidence, trigger words (lf_lora_trigger_words: ss_tag_frequency
 * folder names without the "N_" repeat prefix, sidecar activation text and trained words), metadata,
 * and, given a model, matched and unmatched modules and every shape problem.
 *
 * The report is one JSON object (keys in this order):
 *   file             the path given
 *   tensors, modules counts
 *   warnings         [text]
 *   base             {"family": "SD1" | "SD2" | "SDXL" | "unknown", "evidence": text}
 *   algorithms       {algorithm name: module count}
 *   components       {"unet" | "te" | "te1" | "te2" | "other": module count}
 *   ranks, alphas    [distinct values]
 *   dora             {"output axis" | "input axis": module count}
 *   unknown_tensors  [tensor names with no known role suffix]
 *   trigger_words    [text]
 *   metadata         {key: value} of the file's __metadata__
 *   model            only with a model: {"path", "family", "matched", "unmatched_count",
 *                    "unmatched": [module names], "problems": [error text per module]}
 */
#ifndef LF_INSPECT_H
#define LF_INSPECT_H

#include "lorafuse/lf_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* model_path may be NULL. On success *json is the report as indented JSON text (malloc'd; free()). */
lf_status lf_inspect(const char *path, const char *model_path, char **json);

#ifdef __cplusplus
}
#endif
#endif
