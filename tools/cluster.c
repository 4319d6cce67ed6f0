/* cluster.c — the ranks of a data-parallel `clora train` over MPI (see
 * cluster.h). Built with CLORA_HAVE_MPI when CMake finds MPI; without it,
 * a launcher's environment is recognised and refused with how to get MPI. */
#define _POSIX_C_SOURCE 200809L
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CLORA_HAVE_MPI
#include <mpi.h>
#endif

/* The size a launcher gave this process in its environment (Open MPI,
 * MPICH's Hydra, PMIx, Slurm), 0 when none started it. */
static int launched_size(void)
{
    static const char *const names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE",
                                        "MPI_LOCALNRANKS"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; ++i) {
        const char *v = getenv(names[i]);
        if (v && atoi(v) > 0)
            return atoi(v);
    }
    return 0;
}

int cluster_has_mpi(void)
{
#ifdef CLORA_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int cluster_start(cluster *c, int *argc, char ***argv)
{
    memset(c, 0, sizeof *c);
    c->size = c->local_size = 1;
    const int launched = launched_size();
    if (launched == 0)
        return 1;
#ifdef CLORA_HAVE_MPI
    if (MPI_Init(argc, argv) != MPI_SUCCESS) {
        fprintf(stderr, "clora train: MPI did not start\n");
        return 0;
    }
    c->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &c->local_rank);
    MPI_Comm_size(local, &c->local_size);
    MPI_Comm_free(&local);
    /* a failing rank ends the run (cluster_fail); errors are not returned */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    return 1;
#else
    (void)argc;
    (void)argv;
    if (launched == 1)
        return 1;
    fprintf(stderr,
            "clora train: started as one of %d processes, but this clora was built without "
            "MPI; install Open MPI (apt-get install openmpi-bin libopenmpi-dev) and build "
            "again (make build)\n",
            launched);
    return 0;
#endif
}

void cluster_stop(cluster *c)
{
#ifdef CLORA_HAVE_MPI
    if (c->mpi)
        MPI_Finalize();
#endif
    c->mpi = 0;
}

int cluster_sum(cluster *c, double *values, size_t n)
{
#ifdef CLORA_HAVE_MPI
    if (c->mpi && c->size > 1)
        return MPI_Allreduce(MPI_IN_PLACE, values, (int)n, MPI_DOUBLE, MPI_SUM,
                             MPI_COMM_WORLD) == MPI_SUCCESS;
#endif
    (void)c;
    (void)values;
    (void)n;
    return 1;
}

const char *cluster_device(const cluster *c, char *buf, size_t size)
{
    const char *chosen = getenv("CLORA_DEVICE");
    if (chosen && *chosen)
        return chosen;
    if (c->size == 1)
        return NULL;
    size_t count = 0, gpus = 0, pick = 0;
    if (clora_device_count(&count) != CLORA_OK)
        return NULL;
    for (int pass = 0; pass < 2; ++pass) /* count the GPUs, then find ours */
        for (size_t i = 0, seen = 0; i < count; ++i) {
            clora_device_info info;
            if (clora_device_describe(i, &info) != CLORA_OK || info.type != CLORA_DEVICE_GPU)
                continue;
            if (pass == 0)
                ++gpus;
            else if (seen++ == (size_t)c->local_rank % gpus)
                pick = i;
        }
    if (gpus == 0)
        return NULL;
    snprintf(buf, size, "%zu", pick);
    return buf;
}

clora_status cluster_gradient_hook(clora_buffer *gradients, void *user)
{
    cluster *c = user;
    if (c->size == 1)
        return CLORA_OK;
#ifdef CLORA_HAVE_MPI
    const size_t n = clora_buffer_numel(gradients);
    float *host = malloc((n ? n : 1) * sizeof *host);
    if (!host) { /* the library's message would be another call's */
        fprintf(stderr, "clora train: rank %d: out of host memory for the %zu gradients\n",
                c->rank, n);
        return CLORA_ERR_OUT_OF_HOST_MEMORY;
    }
    clora_status status = clora_buffer_download(gradients, 0, host, n);
    /* in pieces a count of int can hold */
    for (size_t at = 0; status == CLORA_OK && at < n;) {
        const size_t piece = n - at < (size_t)1 << 30 ? n - at : (size_t)1 << 30;
        if (MPI_Allreduce(MPI_IN_PLACE, host + at, (int)piece, MPI_FLOAT, MPI_SUM,
                          MPI_COMM_WORLD) != MPI_SUCCESS)
            status = CLORA_ERR_STATE;
        at += piece;
    }
    if (status == CLORA_OK)
        status = clora_buffer_upload(gradients, 0, host, n);
    c->reduced_bytes += (double)n * sizeof *host;
    free(host);
    return status;
#else
    (void)gradients;
    return CLORA_ERR_UNSUPPORTED;
#endif
}

void cluster_fail(const cluster *c, const char *what, int code)
{
    if (c->size == 1)
        return;
    fprintf(stderr, "clora train: rank %d of %d failed (%s); stopping every rank\n", c->rank,
            c->size, what);
    fflush(stderr);
#ifdef CLORA_HAVE_MPI
    MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}
