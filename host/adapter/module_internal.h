/* module_internal.h: private helpers shared by module_resolve.c (detect, check, resolve a module) and
 * module_contrib.c (its CPU-reference contribution); not part of the public API (lf_adapter.h) and
 * not for other folders: what they may use of a module's shapes is module_geometry.h.
 */
#ifndef LF_MODULE_INTERNAL_H
#define LF_MODULE_INTERNAL_H

#include "lorafuse/lf_adapter.h"
#include "module_geometry.h"

#define LF_SHBUF 96 /* room for one lf_shape_str in a message */

/* A resolved module against the target weight shape wv: every factor fits (T15 tolerance) and the
 * DoRA axis is the one it was resolved with; LF_ERR_SHAPE / LF_ERR_ARG naming module and role. */
lf_status lf_module_check_target(const lf_module *m, const lf_view *wv);

#endif
