/* cluster.h — the processes of one `clora train` run, for data
 * parallelism over MPI. Started by mpirun (or any MPI launcher) with K
 * ranks, each rank opens its own device, takes its share of every batch,
 * and the gradients are summed over the ranks between backward and the
 * optimizer step, so that every rank takes the step of the whole batch.
 * Started alone, or in a clora built without MPI, the cluster is one rank
 * and every call below is a no-op. The library itself knows nothing of
 * MPI: it offers the gradient hook and the examples' places
 * (clora/train.h), which this file fills in. */
#ifndef CLORA_TOOLS_CLUSTER_H
#define CLORA_TOOLS_CLUSTER_H

#include <stddef.h>

#include "clora/clora.h"

typedef struct cluster {
    int rank, size;  /* 0 and 1 alone */
    int local_rank;  /* its place among the ranks on its machine */
    int local_size;
    int mpi;         /* MPI is running (MPI_Init was called) */
    double reduced_bytes; /* gradient bytes summed over the ranks, by this rank */
} cluster;

/* Joins the run's ranks when an MPI launcher started this process; alone,
 * a cluster of one. 0 (with the reason printed) when a launcher started
 * it but clora was built without MPI, or MPI fails to start. */
int cluster_start(cluster *c, int *argc, char ***argv);
/* Leaves the cluster (MPI_Finalize). */
void cluster_stop(cluster *c);
/* Whether this clora was built with MPI. */
int cluster_has_mpi(void);

/* The ranks' sum of n doubles, in place, on every rank. */
int cluster_sum(cluster *c, double *values, size_t n);
/* The device this rank opens by default: CLORA_DEVICE when set, else its
 * local rank's among the machine's devices (GPUs first); NULL: the
 * default device. */
const char *cluster_device(const cluster *c, char *buf, size_t size);

/* A clora_gradient_hook (user: the cluster) that sums the gradient arena
 * over the ranks. */
clora_status cluster_gradient_hook(clora_buffer *gradients, void *user);

/* Ends the whole run because this rank failed: every rank stops (within
 * the launcher's time to kill them) with exit status `code`, the message
 * names this rank. Alone, it returns. */
void cluster_fail(const cluster *c, const char *what, int code);

#endif /* CLORA_TOOLS_CLUSTER_H */
