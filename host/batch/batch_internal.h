/* batch_internal.h: what the files of host/batch/ share: the grid sheets of sweeps (batch_grid.c), drawn
 * by batch_run.c after a shard's jobs. */
#ifndef LF_BATCH_INTERNAL_H
#define LF_BATCH_INTERNAL_H

#include "lorafuse/lf_batch.h"

/* Draw the sheet of every sweep of l with a job among idx whose cells' images all exist under out;
 * *n_grids counts the sheets written. */
lf_status lf_batch_grids(const lf_batch_list *l, const size_t *idx, size_t n_idx, const char *out, size_t *n_grids);

#endif
