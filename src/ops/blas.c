/* blas.c — every CLBlast call of clora lives here; nothing else includes
 * CLBlast's header. Tuning parameters are chosen in tuning.c and handed to
 * CLBlast through clora__clblast_override. */
#include <clblast_c.h>

#include "ops/ops.h"

/* X(enumerator) for the status codes of clblast_c.h. */
#define CLBLAST_STATUS_TABLE(X)                                                          \
    X(CLBlastSuccess) X(CLBlastOpenCLCompilerNotAvailable) X(CLBlastTempBufferAllocFailure) \
    X(CLBlastOpenCLOutOfResources) X(CLBlastOpenCLOutOfHostMemory)                       \
    X(CLBlastOpenCLBuildProgramFailure) X(CLBlastInvalidValue)                           \
    X(CLBlastInvalidCommandQueue) X(CLBlastInvalidMemObject) X(CLBlastInvalidBinary)     \
    X(CLBlastInvalidBuildOptions) X(CLBlastInvalidProgram)                               \
    X(CLBlastInvalidProgramExecutable) X(CLBlastInvalidKernelName)                       \
    X(CLBlastInvalidKernelDefinition) X(CLBlastInvalidKernel) X(CLBlastInvalidArgIndex)  \
    X(CLBlastInvalidArgValue) X(CLBlastInvalidArgSize) X(CLBlastInvalidKernelArgs)       \
    X(CLBlastInvalidLocalNumDimensions) X(CLBlastInvalidLocalThreadsTotal)               \
    X(CLBlastInvalidLocalThreadsDim) X(CLBlastInvalidGlobalOffset)                       \
    X(CLBlastInvalidEventWaitList) X(CLBlastInvalidEvent) X(CLBlastInvalidOperation)     \
    X(CLBlastInvalidBufferSize) X(CLBlastInvalidGlobalWorkSize) X(CLBlastNotImplemented) \
    X(CLBlastInvalidMatrixA) X(CLBlastInvalidMatrixB) X(CLBlastInvalidMatrixC)           \
    X(CLBlastInvalidVectorX) X(CLBlastInvalidVectorY) X(CLBlastInvalidDimension)         \
    X(CLBlastInvalidLeadDimA) X(CLBlastInvalidLeadDimB) X(CLBlastInvalidLeadDimC)        \
    X(CLBlastInvalidIncrementX) X(CLBlastInvalidIncrementY) X(CLBlastInsufficientMemoryA) \
    X(CLBlastInsufficientMemoryB) X(CLBlastInsufficientMemoryC)                          \
    X(CLBlastInsufficientMemoryX) X(CLBlastInsufficientMemoryY)                          \
    X(CLBlastInsufficientMemoryTemp) X(CLBlastInvalidBatchCount)                         \
    X(CLBlastInvalidOverrideKernel) X(CLBlastMissingOverrideParameter)                   \
    X(CLBlastInvalidLocalMemUsage) X(CLBlastNoHalfPrecision) X(CLBlastNoDoublePrecision) \
    X(CLBlastInvalidVectorScalar) X(CLBlastInsufficientMemoryScalar)                     \
    X(CLBlastDatabaseError) X(CLBlastUnknownError) X(CLBlastUnexpectedError)

static const char *clblast_status_name(CLBlastStatusCode code)
{
    switch (code) {
#define CLBLAST_NAME_(name) \
    case name:              \
        return #name;
        CLBLAST_STATUS_TABLE(CLBLAST_NAME_)
#undef CLBLAST_NAME_
    }
    return "unknown CLBlast status";
}

static clora_status fail_clblast(CLBlastStatusCode code, const char *call, const char *file,
                                 int line)
{
    clora_status status = CLORA_ERR_CLBLAST;
    if (code == CLBlastOpenCLOutOfHostMemory)
        status = CLORA_ERR_OUT_OF_HOST_MEMORY;
    else if (code == CLBlastTempBufferAllocFailure)
        status = CLORA_ERR_OUT_OF_DEVICE_MEMORY;
    const char *slash = file;
    for (const char *p = file; *p; ++p)
        if (*p == '/')
            slash = p + 1;
    return clora__fail(status, "%s failed: %s (%d) [%s:%d]", call, clblast_status_name(code),
                       (int)code, slash, line);
}

/* clora's matrices are row-major; CLBlast's row-major GEMM transposes C in
 * and out of a temporary on every call (its kernels compute column-major
 * tiles). A row-major C = op(A) · op(B) is the column-major
 * Cᵀ = op(B)ᵀ · op(A)ᵀ over the same memory, which needs no such copy, so
 * clora calls the column-major routine with the operands swapped. CLBlast's
 * complaints about its "A" are then about clora's B: swapped back here. */
static CLBlastStatusCode swapped_operands(CLBlastStatusCode code)
{
    switch (code) {
    case CLBlastInvalidMatrixA: return CLBlastInvalidMatrixB;
    case CLBlastInvalidMatrixB: return CLBlastInvalidMatrixA;
    case CLBlastInvalidLeadDimA: return CLBlastInvalidLeadDimB;
    case CLBlastInvalidLeadDimB: return CLBlastInvalidLeadDimA;
    case CLBlastInsufficientMemoryA: return CLBlastInsufficientMemoryB;
    case CLBlastInsufficientMemoryB: return CLBlastInsufficientMemoryA;
    default: return code;
    }
}

static CLBlastTranspose transpose_of(int trans)
{
    return trans ? CLBlastTransposeYes : CLBlastTransposeNo;
}

/* One row of C (m = 1, a generation step's token) is a matrix-vector
 * product: CLBlast's GEMM kernels pad the row to a whole tile (and its
 * indirect one copies B every call), its GEMV reads B once. Row-major
 * c (1, n) = a · op(B): with B stored (n, k) that is B · aᵀ, with B stored
 * (k, n) it is Bᵀ · aᵀ; a's elements are lda apart when A is stored (k, 1). */
static clora_status sgemv_row(clora_device *device, int trans_a, int trans_b, size_t n, size_t k,
                              float alpha, cl_mem a, size_t a_offset, size_t lda, cl_mem b,
                              size_t b_offset, size_t ldb, float beta, cl_mem c, size_t c_offset)
{
    CLBlastStatusCode code =
        clora__fault(CLORA__FAULT_BLAS)
            ? CLBlastOpenCLOutOfResources
            : CLBlastSgemv(CLBlastLayoutRowMajor, trans_b ? CLBlastTransposeNo : CLBlastTransposeYes,
                           trans_b ? n : k, trans_b ? k : n, alpha, b, b_offset, ldb, a,
                           a_offset, trans_a ? lda : 1, beta, c, c_offset, 1, &device->queue,
                           NULL);
    if (code != CLBlastSuccess)
        return fail_clblast(code, "CLBlastSgemv", __FILE__, __LINE__);
    return CLORA_OK;
}

clora_status clora__sgemm(clora_device *device, int trans_a, int trans_b, size_t m, size_t n,
                          size_t k, float alpha, cl_mem a, size_t a_offset, size_t lda, cl_mem b,
                          size_t b_offset, size_t ldb, float beta, cl_mem c, size_t c_offset,
                          size_t ldc)
{
    if (m == 1 && n > 1 && k > 0)
        return sgemv_row(device, trans_a, trans_b, n, k, alpha, a, a_offset, lda, b, b_offset,
                         ldb, beta, c, c_offset);
    /* CLBlast's indirect GEMM pads its operands into temporaries; left to
     * itself it allocates and frees them every call, which on a CPU device
     * is the host allocator's heap, fragmented by ever-changing sizes. The
     * device keeps one temporary for every GEMM instead, grown on demand. */
    size_t temp_bytes = 0;
    CLBlastStatusCode code = CLBlastSGemmTempBufferSize(
        CLBlastLayoutColMajor, transpose_of(trans_b), transpose_of(trans_a), n, m, k, b_offset,
        ldb, a_offset, lda, c_offset, ldc, &device->queue, &temp_bytes);
    if (code != CLBlastSuccess)
        return fail_clblast(swapped_operands(code), "CLBlastSGemmTempBufferSize", __FILE__,
                            __LINE__);
    cl_mem temp = NULL;
    if (temp_bytes > 0) {
        clora_status status = clora__device_gemm_temp(device, temp_bytes, &temp);
        if (status != CLORA_OK)
            return status;
    }
    code = clora__fault(CLORA__FAULT_BLAS)
               ? CLBlastOpenCLOutOfResources
               : CLBlastSgemmWithTempBuffer(CLBlastLayoutColMajor, transpose_of(trans_b),
                                            transpose_of(trans_a), n, m, k, alpha, b, b_offset,
                                            ldb, a, a_offset, lda, beta, c, c_offset, ldc,
                                            &device->queue, NULL, temp);
    if (code != CLBlastSuccess)
        return fail_clblast(swapped_operands(code), "CLBlastSgemm", __FILE__, __LINE__);
    return CLORA_OK;
}

clora_status clora__sgemm_batched(clora_device *device, int trans_a, int trans_b, size_t m,
                                  size_t n, size_t k, float alpha, cl_mem a, size_t a_offset,
                                  size_t lda, size_t a_stride, cl_mem b, size_t b_offset,
                                  size_t ldb, size_t b_stride, float beta, cl_mem c,
                                  size_t c_offset, size_t ldc, size_t c_stride, size_t count)
{
    CLBlastStatusCode code =
        clora__fault(CLORA__FAULT_BLAS)
            ? CLBlastOpenCLOutOfResources
            : CLBlastSgemmStridedBatched(CLBlastLayoutColMajor, transpose_of(trans_b),
                                         transpose_of(trans_a), n, m, k, alpha, b, b_offset, ldb,
                                         b_stride, a, a_offset, lda, a_stride, beta, c, c_offset,
                                         ldc, c_stride, count, &device->queue, NULL);
    if (code != CLBlastSuccess)
        return fail_clblast(swapped_operands(code), "CLBlastSgemmStridedBatched", __FILE__,
                            __LINE__);
    return CLORA_OK;
}

clora_status clora__clblast_override(cl_device_id device, const char *kernel, size_t count,
                                     const char **names, const size_t *values)
{
    CLBlastStatusCode code = CLBlastOverrideParameters(device, kernel, CLBlastPrecisionSingle,
                                                       count, names, values);
    if (code != CLBlastSuccess)
        return clora__fail(CLORA_ERR_CLBLAST,
                           "CLBlast refused the parameters for its %s kernel: %s (%d)", kernel,
                           clblast_status_name(code), (int)code);
    return CLORA_OK;
}

void clora__clblast_clear_cache(void)
{
    CLBlastClearCache();
}
