/* lf_emu_dnn.cpp: a CPU stand-in for the cuDNN graph (backend) API subset of host/cuda/compute_cuda_dnn.c
 * (header kernels/emu/include/cudnn.h), in the -DLF_CUDA_EMU=ON build, following the documented
 * semantics rather than what the caller hopes for:
 *   - descriptors: every attribute is checked against its descriptor type, attribute type and element
 *     count (CUDNN_STATUS_BAD_PARAM / _ATTRIBUTE_TYPE); descriptors passed as attributes must be live
 *     and finalized; a finalized descriptor takes no more attributes.
 *   - finalize validates: missing required attributes, dims/strides counts, the conv's output shape
 *     from its padding/stride/dilation, pointwise operand broadcasting (each B dim equal to Y's or 1),
 *     SDPA shapes (Q b,h,sq,d; K b,h,sk,d; V b,h,sk,dv; O b,h,sq,dv) -> CUDNN_STATUS_BAD_PARAM;
 *     unique tensor UIDs in a graph, every virtual tensor produced and consumed inside it.
 *   - engine heuristics give one engine config for the patterns the stand-in runs (conv fprop; conv
 *     fprop -> up to two pointwise ADD/IDENTITY in a chain through virtual tensors, each ADD's B
 *     broadcast or full-size with strides of its own: the bias, the residual; SDPA forward) and none
 *     otherwise; SDPA
 *     only for f16/bf16 and head widths that are multiples of 8 up to 256 (cuDNN 9's support matrix
 *     for sm80+). LF_EMU_CUDNN_REFUSE=conv|sdpa|all makes them find no engine (the caller's fallback).
 *   - execute: every non-virtual tensor's UID in the variant pack, its pointer device memory covering
 *     the extent 1 + sum (dim-1)*stride elements and aligned to its BYTE_ALIGNMENT (by-value tensors:
 *     a host pointer); the workspace device memory of the plan's size (overwritten with junk); the
 *     tensors read and written through their strides, so a wrong stride or layout gives wrong numbers.
 *     conv: f32 sums, one fmaf per term in (c, r, s) order, cross-correlation (CUDNN_CONVOLUTION flips
 *     the filter), y = alpha * acc (+ beta * y); pointwise in f32; SDPA: S = scale * Q K^T in f32,
 *     softmax in f32, P rounded to the I/O type before P V (as the fused kernels feed the tensor cores),
 *     O rounded once into its type.
 * Fallible calls (injection, lf_emu.h): cudnnCreate, cudnnBackendCreateDescriptor, cudnnBackendFinalize
 * (host-side) and cudnnBackendExecute (a device operation on the handle's stream). Handles and
 * descriptors are library handles: any left at exit is a leak.
 */
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include <cudnn.h>

#include "kernels/common/lf_half.h"
#include "kernels/emu/lf_emu.h"

struct cudnnContext {
    cudaStream_t stream;
};

namespace {

struct attr {
    cudnnBackendAttributeType_t type;
    int64_t count;
    std::vector<unsigned char> bytes;
};

struct desc;

struct tensor_info {
    cudnnDataType_t dt;
    std::vector<int64_t> dims, strides;
    int64_t uid, align;
    bool virt, by_value;
};

struct desc {
    cudnnBackendDescriptorType_t type;
    bool finalized = false;
    std::map<int, attr> a;
    tensor_info t{};          /* TENSOR */
    desc *graph = nullptr;    /* ENGINECFG, EXECUTION_PLAN: the operation graph */
    int64_t ws = 0;           /* EXECUTION_PLAN */
};

std::set<desc *> &live() {
    static std::set<desc *> s;
    return s;
}
std::set<cudnnHandle_t> &handles() {
    static std::set<cudnnHandle_t> s;
    return s;
}

desc *D(const void *p) {
    desc *d = static_cast<desc *>(const_cast<void *>(p));
    return live().count(d) ? d : nullptr;
}

size_t elem_size(cudnnBackendAttributeType_t t) {
    switch (t) {
    case CUDNN_TYPE_HANDLE: return sizeof(cudnnHandle_t);
    case CUDNN_TYPE_BOOLEAN: return sizeof(bool);
    case CUDNN_TYPE_INT64: return sizeof(int64_t);
    case CUDNN_TYPE_FLOAT: return sizeof(float);
    case CUDNN_TYPE_DOUBLE: return sizeof(double);
    case CUDNN_TYPE_VOID_PTR: return sizeof(void *);
    case CUDNN_TYPE_BACKEND_DESCRIPTOR: return sizeof(cudnnBackendDescriptor_t);
    default: return sizeof(int); /* the enum types */
    }
}

/* what an attribute of a descriptor type takes: its type(s) and element counts */
struct rule {
    cudnnBackendAttributeType_t type, alt;
    int64_t lo, hi;
    int sub; /* BACKEND_DESCRIPTOR elements: their descriptor type, -1 any operation */
};

bool rule_of(cudnnBackendDescriptorType_t dt, int name, rule *r) {
    const cudnnBackendAttributeType_t BD = CUDNN_TYPE_BACKEND_DESCRIPTOR, I64 = CUDNN_TYPE_INT64;
    const int T = CUDNN_BACKEND_TENSOR_DESCRIPTOR;
    switch (dt) {
    case CUDNN_BACKEND_TENSOR_DESCRIPTOR:
        switch (name) {
        case CUDNN_ATTR_TENSOR_DATA_TYPE: *r = {CUDNN_TYPE_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, 1, 0}; return true;
        case CUDNN_ATTR_TENSOR_DIMENSIONS:
        case CUDNN_ATTR_TENSOR_STRIDES: *r = {I64, I64, 1, 8, 0}; return true;
        case CUDNN_ATTR_TENSOR_UNIQUE_ID:
        case CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT: *r = {I64, I64, 1, 1, 0}; return true;
        case CUDNN_ATTR_TENSOR_IS_VIRTUAL:
        case CUDNN_ATTR_TENSOR_IS_BY_VALUE: *r = {CUDNN_TYPE_BOOLEAN, CUDNN_TYPE_BOOLEAN, 1, 1, 0}; return true;
        }
        return false;
    case CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR:
        switch (name) {
        case CUDNN_ATTR_CONVOLUTION_COMP_TYPE: *r = {CUDNN_TYPE_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, 1, 0}; return true;
        case CUDNN_ATTR_CONVOLUTION_CONV_MODE:
            *r = {CUDNN_TYPE_CONVOLUTION_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, 1, 0};
            return true;
        case CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS: *r = {I64, I64, 1, 1, 0}; return true;
        case CUDNN_ATTR_CONVOLUTION_DILATIONS:
        case CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES:
        case CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS:
        case CUDNN_ATTR_CONVOLUTION_POST_PADDINGS: *r = {I64, I64, 1, 8, 0}; return true;
        }
        return false;
    case CUDNN_BACKEND_POINTWISE_DESCRIPTOR:
        if (name == CUDNN_ATTR_POINTWISE_MODE)
            return *r = {CUDNN_TYPE_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, 1, 0}, true;
        if (name == CUDNN_ATTR_POINTWISE_MATH_PREC)
            return *r = {CUDNN_TYPE_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, 1, 0}, true;
        return false;
    case CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR:
        switch (name) {
        case CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X:
        case CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W:
        case CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y: *r = {BD, BD, 1, 1, T}; return true;
        case CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC:
            *r = {BD, BD, 1, 1, CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR};
            return true;
        case CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA:
        case CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA:
            *r = {CUDNN_TYPE_FLOAT, CUDNN_TYPE_DOUBLE, 1, 1, 0};
            return true;
        }
        return false;
    case CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR:
        switch (name) {
        case CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR:
            *r = {BD, BD, 1, 1, CUDNN_BACKEND_POINTWISE_DESCRIPTOR};
            return true;
        case CUDNN_ATTR_OPERATION_POINTWISE_XDESC:
        case CUDNN_ATTR_OPERATION_POINTWISE_BDESC:
        case CUDNN_ATTR_OPERATION_POINTWISE_YDESC: *r = {BD, BD, 1, 1, T}; return true;
        }
        return false;
    case CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR:
        switch (name) {
        case CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC:
        case CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC:
        case CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC:
        case CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC:
        case CUDNN_ATTR_OPERATION_SDPA_FWD_STATSDESC:
        case CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC: *r = {BD, BD, 1, 1, T}; return true;
        }
        return false;
    case CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR:
        if (name == CUDNN_ATTR_OPERATIONGRAPH_OPS) return *r = {BD, BD, 1, 64, -1}, true;
        if (name == CUDNN_ATTR_OPERATIONGRAPH_HANDLE)
            return *r = {CUDNN_TYPE_HANDLE, CUDNN_TYPE_HANDLE, 1, 1, 0}, true;
        return false;
    case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR:
        if (name == CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH)
            return *r = {BD, BD, 1, 1, CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR}, true;
        if (name == CUDNN_ATTR_ENGINEHEUR_MODE) return *r = {CUDNN_TYPE_HEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, 1, 0}, true;
        return false;
    case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR:
        if (name == CUDNN_ATTR_EXECUTION_PLAN_HANDLE)
            return *r = {CUDNN_TYPE_HANDLE, CUDNN_TYPE_HANDLE, 1, 1, 0}, true;
        if (name == CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG)
            return *r = {BD, BD, 1, 1, CUDNN_BACKEND_ENGINECFG_DESCRIPTOR}, true;
        return false;
    case CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR:
        if (name == CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS) return *r = {I64, I64, 1, 64, 0}, true;
        if (name == CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS)
            return *r = {CUDNN_TYPE_VOID_PTR, CUDNN_TYPE_VOID_PTR, 1, 64, 0}, true;
        if (name == CUDNN_ATTR_VARIANT_PACK_WORKSPACE)
            return *r = {CUDNN_TYPE_VOID_PTR, CUDNN_TYPE_VOID_PTR, 1, 1, 0}, true;
        return false;
    default: return false;
    }
}

bool is_op(cudnnBackendDescriptorType_t t) {
    return t == CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR ||
           t == CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR || t == CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR;
}

bool has(const desc *d, int name) { return d->a.count(name) != 0; }

template <class T> T get1(const desc *d, int name) {
    T v{};
    const attr &x = d->a.at(name);
    std::memcpy(&v, x.bytes.data(), sizeof v < x.bytes.size() ? sizeof v : x.bytes.size());
    return v;
}
template <class T> std::vector<T> getv(const desc *d, int name) {
    const attr &x = d->a.at(name);
    std::vector<T> v((size_t)x.count);
    std::memcpy(v.data(), x.bytes.data(), x.bytes.size());
    return v;
}
desc *sub(const desc *d, int name) { return has(d, name) ? D(get1<void *>(d, name)) : nullptr; }

double scalar(const desc *d, int name, double dflt) {
    if (!has(d, name)) return dflt;
    const attr &x = d->a.at(name);
    return x.type == CUDNN_TYPE_DOUBLE ? get1<double>(d, name) : (double)get1<float>(d, name);
}

/* ---- finalize ------------------------------------------------------------------------------- */

cudnnStatus_t fin_tensor(desc *d) {
    for (int n : {CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_ATTR_TENSOR_STRIDES,
                  CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT})
        if (!has(d, n)) return CUDNN_STATUS_BAD_PARAM;
    tensor_info &t = d->t;
    t.dt = get1<cudnnDataType_t>(d, CUDNN_ATTR_TENSOR_DATA_TYPE);
    t.dims = getv<int64_t>(d, CUDNN_ATTR_TENSOR_DIMENSIONS);
    t.strides = getv<int64_t>(d, CUDNN_ATTR_TENSOR_STRIDES);
    t.uid = get1<int64_t>(d, CUDNN_ATTR_TENSOR_UNIQUE_ID);
    t.align = get1<int64_t>(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT);
    t.virt = has(d, CUDNN_ATTR_TENSOR_IS_VIRTUAL) && get1<bool>(d, CUDNN_ATTR_TENSOR_IS_VIRTUAL);
    t.by_value = has(d, CUDNN_ATTR_TENSOR_IS_BY_VALUE) && get1<bool>(d, CUDNN_ATTR_TENSOR_IS_BY_VALUE);
    if (t.dims.size() != t.strides.size() || t.align <= 0 || (t.align & (t.align - 1))) return CUDNN_STATUS_BAD_PARAM;
    for (size_t i = 0; i < t.dims.size(); i++)
        if (t.dims[i] <= 0 || t.strides[i] <= 0) return CUDNN_STATUS_BAD_PARAM;
    if (t.dt != CUDNN_DATA_FLOAT && t.dt != CUDNN_DATA_HALF && t.dt != CUDNN_DATA_BFLOAT16)
        return CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE;
    if (t.virt && t.by_value) return CUDNN_STATUS_BAD_PARAM;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t fin_conv(desc *d) {
    for (int n : {CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS,
                  CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES,
                  CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS})
        if (!has(d, n)) return CUDNN_STATUS_BAD_PARAM;
    const int64_t sp = get1<int64_t>(d, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS);
    for (int n : {CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES,
                  CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS}) {
        if (d->a.at(n).count != sp) return CUDNN_STATUS_BAD_PARAM;
        for (int64_t v : getv<int64_t>(d, n))
            if (v < (n == CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS || n == CUDNN_ATTR_CONVOLUTION_POST_PADDINGS ? 0 : 1))
                return CUDNN_STATUS_BAD_PARAM;
    }
    if (sp != 2) return CUDNN_STATUS_NOT_SUPPORTED; /* the stand-in runs 2-D convolutions */
    const cudnnConvolutionMode_t m = get1<cudnnConvolutionMode_t>(d, CUDNN_ATTR_CONVOLUTION_CONV_MODE);
    if (m != CUDNN_CONVOLUTION && m != CUDNN_CROSS_CORRELATION) return CUDNN_STATUS_BAD_PARAM;
    return CUDNN_STATUS_SUCCESS;
}

/* Y's spatial size from the conv descriptor */
int64_t conv_out(int64_t in, int64_t k, int64_t pre, int64_t post, int64_t st, int64_t dil) {
    return (in + pre + post - dil * (k - 1) - 1) / st + 1;
}

cudnnStatus_t fin_conv_op(desc *d) {
    desc *X = sub(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X), *W = sub(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W),
         *Y = sub(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y),
         *C = sub(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC);
    if (!X || !W || !Y || !C || !has(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA) ||
        !has(d, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA))
        return CUDNN_STATUS_BAD_PARAM;
    const tensor_info &x = X->t, &w = W->t, &y = Y->t;
    if (x.dims.size() != 4 || w.dims.size() != 4 || y.dims.size() != 4) return CUDNN_STATUS_BAD_PARAM;
    if (x.dims[1] != w.dims[1] || y.dims[0] != x.dims[0] || y.dims[1] != w.dims[0]) return CUDNN_STATUS_BAD_PARAM;
    const auto st = getv<int64_t>(C, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES),
               dl = getv<int64_t>(C, CUDNN_ATTR_CONVOLUTION_DILATIONS),
               pre = getv<int64_t>(C, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS),
               post = getv<int64_t>(C, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS);
    for (int i = 0; i < 2; i++)
        if (y.dims[2 + i] != conv_out(x.dims[2 + i], w.dims[2 + i], pre[i], post[i], st[i], dl[i]))
            return CUDNN_STATUS_BAD_PARAM;
    if (x.dt != w.dt) return CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE;
    if (x.virt || w.virt) return CUDNN_STATUS_NOT_SUPPORTED; /* conv fprop reads real tensors */
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t fin_pw_op(desc *d) {
    desc *P = sub(d, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR), *X = sub(d, CUDNN_ATTR_OPERATION_POINTWISE_XDESC),
         *B = sub(d, CUDNN_ATTR_OPERATION_POINTWISE_BDESC), *Y = sub(d, CUDNN_ATTR_OPERATION_POINTWISE_YDESC);
    if (!P || !X || !Y) return CUDNN_STATUS_BAD_PARAM;
    const cudnnPointwiseMode_t m = get1<cudnnPointwiseMode_t>(P, CUDNN_ATTR_POINTWISE_MODE);
    if ((m == CUDNN_POINTWISE_ADD) != (B != nullptr)) return CUDNN_STATUS_BAD_PARAM; /* ADD is binary */
    if (X->t.dims != Y->t.dims) return CUDNN_STATUS_BAD_PARAM;
    if (B) {
        if (B->t.dims.size() != Y->t.dims.size()) return CUDNN_STATUS_BAD_PARAM;
        for (size_t i = 0; i < B->t.dims.size(); i++)
            if (B->t.dims[i] != Y->t.dims[i] && B->t.dims[i] != 1) return CUDNN_STATUS_BAD_PARAM;
    }
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t fin_sdpa_op(desc *d) {
    desc *Q = sub(d, CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC), *K = sub(d, CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC),
         *V = sub(d, CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC), *O = sub(d, CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC),
         *S = sub(d, CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC);
    if (!Q || !K || !V || !O) return CUDNN_STATUS_BAD_PARAM;
    const auto &q = Q->t.dims, &k = K->t.dims, &v = V->t.dims, &o = O->t.dims;
    if (q.size() != 4 || k.size() != 4 || v.size() != 4 || o.size() != 4) return CUDNN_STATUS_BAD_PARAM;
    if (k[0] != q[0] || v[0] != q[0] || o[0] != q[0] || k[1] != q[1] || v[1] != q[1] || o[1] != q[1] ||
        k[3] != q[3] || v[2] != k[2] || o[2] != q[2] || o[3] != v[3])
        return CUDNN_STATUS_BAD_PARAM;
    if (S) {
        const tensor_info &s = S->t;
        int64_t n = 1;
        for (int64_t x : s.dims) n *= x;
        if (n != 1 || s.dt != CUDNN_DATA_FLOAT) return CUDNN_STATUS_BAD_PARAM;
    }
    if (has(d, CUDNN_ATTR_OPERATION_SDPA_FWD_STATSDESC)) return CUDNN_STATUS_NOT_SUPPORTED; /* not in the stand-in */
    return CUDNN_STATUS_SUCCESS;
}

/* the tensors an operation reads and writes */
void op_tensors(const desc *op, std::vector<desc *> &in, std::vector<desc *> &out) {
    switch (op->type) {
    case CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR:
        in = {sub(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X), sub(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W)};
        out = {sub(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y)};
        break;
    case CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR:
        in = {sub(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC)};
        if (desc *b = sub(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC)) in.push_back(b);
        out = {sub(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC)};
        break;
    default:
        in = {sub(op, CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC), sub(op, CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC),
              sub(op, CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC)};
        if (desc *s = sub(op, CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC)) in.push_back(s);
        out = {sub(op, CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC)};
    }
}

std::vector<desc *> graph_ops(const desc *g) {
    std::vector<desc *> ops;
    for (void *p : getv<void *>(g, CUDNN_ATTR_OPERATIONGRAPH_OPS)) ops.push_back(D(p));
    return ops;
}

cudnnStatus_t fin_graph(desc *g) {
    if (!has(g, CUDNN_ATTR_OPERATIONGRAPH_OPS) || !has(g, CUDNN_ATTR_OPERATIONGRAPH_HANDLE))
        return CUDNN_STATUS_BAD_PARAM;
    if (!handles().count(get1<cudnnHandle_t>(g, CUDNN_ATTR_OPERATIONGRAPH_HANDLE))) return CUDNN_STATUS_BAD_PARAM;
    std::map<int64_t, desc *> by_uid;
    std::map<desc *, int> produced, consumed;
    for (desc *op : graph_ops(g)) {
        if (!op || !is_op(op->type)) return CUDNN_STATUS_BAD_PARAM;
        std::vector<desc *> in, out;
        op_tensors(op, in, out);
        for (int side = 0; side < 2; side++)
            for (desc *t : side ? out : in) {
                auto it = by_uid.find(t->t.uid);
                if (it != by_uid.end() && it->second != t) return CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES;
                by_uid[t->t.uid] = t;
                (side ? produced : consumed)[t]++;
            }
    }
    for (auto &kv : by_uid) {
        desc *t = kv.second;
        if (produced[t] > 1) return CUDNN_STATUS_BAD_PARAM;
        if (t->t.virt && (produced[t] != 1 || consumed[t] < 1)) return CUDNN_STATUS_BAD_PARAM;
    }
    return CUDNN_STATUS_SUCCESS;
}

/* the engine the stand-in has for a graph, or none: 1 conv [-> pointwise], 2 sdpa, 0 */
int engine_for(const desc *g) {
    const std::vector<desc *> ops = graph_ops(g);
    const char *refuse = std::getenv("LF_EMU_CUDNN_REFUSE");
    const bool all = refuse && !std::strcmp(refuse, "all");
    if (ops.empty()) return 0;
    if (ops[0]->type == CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR) {
        if (all || (refuse && !std::strcmp(refuse, "conv"))) return 0;
        if (ops.size() > 3) return 0;
        /* a chain: each pointwise op reads the previous op's (virtual) output as X */
        desc *prev = sub(ops[0], CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y);
        for (size_t i = 1; i < ops.size(); i++) {
            if (ops[i]->type != CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR) return 0;
            if (sub(ops[i], CUDNN_ATTR_OPERATION_POINTWISE_XDESC) != prev) return 0;
            prev = sub(ops[i], CUDNN_ATTR_OPERATION_POINTWISE_YDESC);
        }
        return 1;
    }
    if (ops[0]->type == CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR && ops.size() == 1) {
        if (all || (refuse && !std::strcmp(refuse, "sdpa"))) return 0;
        const tensor_info &q = sub(ops[0], CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC)->t;
        for (int n : {CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC, CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC,
                      CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC, CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC}) {
            const tensor_info &t = sub(ops[0], n)->t;
            if (t.dt != q.dt || (t.dt != CUDNN_DATA_HALF && t.dt != CUDNN_DATA_BFLOAT16)) return 0;
            if (t.dims[3] % 8 || t.dims[3] > 256) return 0;
        }
        return 2;
    }
    return 0;
}

/* ---- execution ------------------------------------------------------------------------------ */

float ld(const void *p, cudnnDataType_t t, int64_t i) {
    if (t == CUDNN_DATA_HALF) return lf_f16_to_f32(static_cast<const uint16_t *>(p)[i]);
    if (t == CUDNN_DATA_BFLOAT16) return lf_bf16_to_f32(static_cast<const uint16_t *>(p)[i]);
    return static_cast<const float *>(p)[i];
}
float round_to(cudnnDataType_t t, float v) {
    if (t == CUDNN_DATA_HALF) return lf_f16_to_f32(lf_f32_to_f16(v));
    if (t == CUDNN_DATA_BFLOAT16) return lf_bf16_to_f32(lf_f32_to_bf16(v));
    return v;
}
void st(void *p, cudnnDataType_t t, int64_t i, float v) {
    if (t == CUDNN_DATA_HALF) static_cast<uint16_t *>(p)[i] = lf_f32_to_f16(v);
    else if (t == CUDNN_DATA_BFLOAT16) static_cast<uint16_t *>(p)[i] = lf_f32_to_bf16(v);
    else static_cast<float *>(p)[i] = v;
}
size_t dt_size(cudnnDataType_t t) { return t == CUDNN_DATA_FLOAT ? 4 : 2; }

int64_t extent(const tensor_info &t) {
    int64_t e = 1;
    for (size_t i = 0; i < t.dims.size(); i++) e += (t.dims[i] - 1) * t.strides[i];
    return e;
}

/* a tensor's memory during one execute: the caller's pointer or, for a virtual tensor, f32 scratch */
struct bound {
    void *p;
    cudnnDataType_t dt;
    const tensor_info *t;
};

int64_t off4(const tensor_info &t, int64_t a, int64_t b, int64_t c, int64_t d) {
    return a * t.strides[0] + b * t.strides[1] + c * t.strides[2] + d * t.strides[3];
}

void run_conv(const desc *op, std::map<desc *, bound> &m) {
    desc *Xd = sub(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X), *Wd = sub(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W),
         *Yd = sub(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y),
         *C = sub(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC);
    const bound X = m.at(Xd), W = m.at(Wd), Y = m.at(Yd);
    const tensor_info &x = *X.t, &w = *W.t, &y = *Y.t;
    const auto sd = getv<int64_t>(C, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES),
               dl = getv<int64_t>(C, CUDNN_ATTR_CONVOLUTION_DILATIONS),
               pre = getv<int64_t>(C, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS);
    const bool flip = get1<cudnnConvolutionMode_t>(C, CUDNN_ATTR_CONVOLUTION_CONV_MODE) == CUDNN_CONVOLUTION;
    const float alpha = (float)scalar(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA, 1.0),
                beta = (float)scalar(op, CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA, 0.0);
    const int64_t Nn = x.dims[0], Cn = x.dims[1], H = x.dims[2], Wx = x.dims[3], K = w.dims[0], R = w.dims[2],
                  S = w.dims[3];
    /* X and W read once through their strides into dense (n, c, h, w) / (k, c, r, s) f32 copies */
    std::vector<float> xf((size_t)(Nn * Cn * H * Wx)), wf((size_t)(K * Cn * R * S));
    for (int64_t n = 0, i = 0; n < Nn; n++)
        for (int64_t c = 0; c < Cn; c++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t q = 0; q < Wx; q++) xf[(size_t)i++] = ld(X.p, X.dt, off4(x, n, c, h, q));
    for (int64_t k = 0, i = 0; k < K; k++)
        for (int64_t c = 0; c < Cn; c++)
            for (int64_t r = 0; r < R; r++)
                for (int64_t s = 0; s < S; s++) wf[(size_t)i++] = ld(W.p, W.dt, off4(w, k, c, r, s));
    for (int64_t n = 0; n < y.dims[0]; n++)
        for (int64_t k = 0; k < y.dims[1]; k++)
            for (int64_t oh = 0; oh < y.dims[2]; oh++)
                for (int64_t ow = 0; ow < y.dims[3]; ow++) {
                    float acc = 0.0f;
                    for (int64_t c = 0; c < Cn; c++)
                        for (int64_t r = 0; r < R; r++) {
                            const int64_t ih = oh * sd[0] - pre[0] + r * dl[0];
                            if (ih < 0 || ih >= H) continue;
                            const float *xr = &xf[(size_t)(((n * Cn + c) * H + ih) * Wx)];
                            const float *wr = &wf[(size_t)(((k * Cn + c) * R + (flip ? R - 1 - r : r)) * S)];
                            for (int64_t s = 0; s < S; s++) {
                                const int64_t iw = ow * sd[1] - pre[1] + s * dl[1];
                                if (iw < 0 || iw >= Wx) continue;
                                acc = std::fmaf(xr[iw], wr[flip ? S - 1 - s : s], acc);
                            }
                        }
                    const int64_t yi = off4(y, n, k, oh, ow);
                    const float r = beta == 0.0f ? alpha * acc : std::fmaf(beta, ld(Y.p, Y.dt, yi), alpha * acc);
                    st(Y.p, Y.dt, yi, r);
                }
}

void run_pw(const desc *op, std::map<desc *, bound> &m) {
    desc *P = sub(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR);
    desc *Bd = sub(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC);
    const bound X = m.at(sub(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC)), Y = m.at(sub(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC));
    const bool add = get1<cudnnPointwiseMode_t>(P, CUDNN_ATTR_POINTWISE_MODE) == CUDNN_POINTWISE_ADD;
    const tensor_info &y = *Y.t, &x = *X.t;
    const size_t nd = y.dims.size();
    std::vector<int64_t> idx(nd, 0);
    int64_t total = 1;
    for (int64_t dsz : y.dims) total *= dsz;
    for (int64_t e = 0; e < total; e++) {
        int64_t rem = e, xo = 0, yo = 0, bo = 0;
        for (size_t i = nd; i-- > 0;) {
            idx[i] = rem % y.dims[i];
            rem /= y.dims[i];
            xo += idx[i] * x.strides[i];
            yo += idx[i] * y.strides[i];
            if (Bd) bo += (Bd->t.dims[i] == 1 ? 0 : idx[i]) * Bd->t.strides[i];
        }
        float v = ld(X.p, X.dt, xo);
        if (add) {
            const bound B = m.at(Bd);
            v = v + ld(B.p, B.dt, bo);
        }
        st(Y.p, Y.dt, yo, v);
    }
}

void run_sdpa(const desc *op, std::map<desc *, bound> &m) {
    const bound Q = m.at(sub(op, CUDNN_ATTR_OPERATION_SDPA_FWD_QDESC)), K = m.at(sub(op, CUDNN_ATTR_OPERATION_SDPA_FWD_KDESC)),
                V = m.at(sub(op, CUDNN_ATTR_OPERATION_SDPA_FWD_VDESC)), O = m.at(sub(op, CUDNN_ATTR_OPERATION_SDPA_FWD_ODESC));
    desc *Sd = sub(op, CUDNN_ATTR_OPERATION_SDPA_FWD_SCALEDESC);
    const float scale = Sd ? *static_cast<const float *>(m.at(Sd).p) : 1.0f;
    const tensor_info &q = *Q.t, &k = *K.t, &v = *V.t, &o = *O.t;
    const int64_t B = q.dims[0], H = q.dims[1], Sq = q.dims[2], Sk = k.dims[2], Dq = q.dims[3], Dv = v.dims[3];
    std::vector<float> s((size_t)Sk);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Sq; i++) {
                float mx = -INFINITY;
                for (int64_t j = 0; j < Sk; j++) {
                    float acc = 0.0f;
                    for (int64_t t = 0; t < Dq; t++)
                        acc = std::fmaf(ld(Q.p, Q.dt, off4(q, b, h, i, t)), ld(K.p, K.dt, off4(k, b, h, j, t)), acc);
                    s[(size_t)j] = scale * acc;
                    mx = std::fmax(mx, s[(size_t)j]);
                }
                float sum = 0.0f;
                for (int64_t j = 0; j < Sk; j++) sum += s[(size_t)j] = std::exp(s[(size_t)j] - mx);
                for (int64_t j = 0; j < Sk; j++) s[(size_t)j] = round_to(Q.dt, s[(size_t)j] / sum);
                for (int64_t t = 0; t < Dv; t++) {
                    float acc = 0.0f;
                    for (int64_t j = 0; j < Sk; j++) acc = std::fmaf(s[(size_t)j], ld(V.p, V.dt, off4(v, b, h, j, t)), acc);
                    st(O.p, O.dt, off4(o, b, h, i, t), acc);
                }
            }
}

cudnnStatus_t inject(const char *call, cudnnStatus_t e) { return lf_emu_inject(call) ? e : CUDNN_STATUS_SUCCESS; }

} // namespace

extern "C" {

size_t cudnnGetVersion(void) { return CUDNN_VERSION; }

const char *cudnnGetErrorString(cudnnStatus_t s) {
    switch (s) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_BAD_PARAM_NULL_POINTER: return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER: return "CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER";
    case CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED: return "CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED";
    case CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND: return "CUDNN_STATUS_BAD_PARAM_OUT_OF_BOUND";
    case CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT: return "CUDNN_STATUS_BAD_PARAM_SIZE_INSUFFICIENT";
    case CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH: return "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH";
    case CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES: return "CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES";
    case CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE: return "CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE";
    case CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE: return "CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN: return "CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN";
    case CUDNN_STATUS_NOT_SUPPORTED_SHAPE: return "CUDNN_STATUS_NOT_SUPPORTED_SHAPE";
    case CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE: return "CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE";
    case CUDNN_STATUS_NOT_SUPPORTED_LAYOUT: return "CUDNN_STATUS_NOT_SUPPORTED_LAYOUT";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED: return "CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
    }
    return "CUDNN_STATUS_UNKNOWN";
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle) {
    if (!handle) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
    if (lf_emu_device_op("cudnnCreate", nullptr) != 0) return CUDNN_STATUS_NOT_INITIALIZED;
    *handle = new cudnnContext{nullptr};
    handles().insert(*handle);
    lf_emu_handles(1);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroy(cudnnHandle_t h) {
    if (!handles().erase(h)) return CUDNN_STATUS_BAD_PARAM;
    delete h;
    lf_emu_handles(-1);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s) {
    if (!handles().count(h)) return CUDNN_STATUS_BAD_PARAM;
    h->stream = s;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendCreateDescriptor(cudnnBackendDescriptorType_t t, cudnnBackendDescriptor_t *out) {
    if (!out) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
    switch (t) {
    case CUDNN_BACKEND_POINTWISE_DESCRIPTOR: case CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR:
    case CUDNN_BACKEND_ENGINECFG_DESCRIPTOR: case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR:
    case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR: case CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR:
    case CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR: case CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR:
    case CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR: case CUDNN_BACKEND_TENSOR_DESCRIPTOR:
    case CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR: break;
    default: return CUDNN_STATUS_NOT_SUPPORTED; /* outside the stand-in's subset */
    }
    if (cudnnStatus_t e = inject("cudnnBackendCreateDescriptor", CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED))
        return e;
    desc *d = new desc;
    d->type = t;
    live().insert(d);
    lf_emu_handles(1);
    *out = d;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendDestroyDescriptor(cudnnBackendDescriptor_t p) {
    desc *d = D(p);
    if (!d) return CUDNN_STATUS_BAD_PARAM;
    live().erase(d);
    delete d;
    lf_emu_handles(-1);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendSetAttribute(cudnnBackendDescriptor_t p, cudnnBackendAttributeName_t name,
                                       cudnnBackendAttributeType_t type, int64_t count, const void *v) {
    desc *d = D(p);
    rule r;
    if (!d) return CUDNN_STATUS_BAD_PARAM;
    if (d->finalized) return CUDNN_STATUS_BAD_PARAM; /* finalized descriptors are read-only */
    if (!v) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
    if (!rule_of(d->type, name, &r)) return CUDNN_STATUS_BAD_PARAM;
    if (type != r.type && type != r.alt) return CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE;
    if (count < r.lo || count > r.hi) return CUDNN_STATUS_BAD_PARAM;
    if (type == CUDNN_TYPE_BACKEND_DESCRIPTOR)
        for (int64_t i = 0; i < count; i++) {
            desc *s = D(static_cast<void *const *>(v)[i]);
            if (!s) return CUDNN_STATUS_BAD_PARAM;
            if (r.sub >= 0 ? (int)s->type != r.sub : !is_op(s->type)) return CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE;
            if (!s->finalized) return CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED;
        }
    attr a{type, count, std::vector<unsigned char>((size_t)count * elem_size(type))};
    std::memcpy(a.bytes.data(), v, a.bytes.size());
    d->a[name] = a;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendFinalize(cudnnBackendDescriptor_t p) {
    desc *d = D(p);
    if (!d) return CUDNN_STATUS_BAD_PARAM;
    if (d->finalized) return CUDNN_STATUS_BAD_PARAM;
    cudnnStatus_t e = CUDNN_STATUS_SUCCESS;
    switch (d->type) {
    case CUDNN_BACKEND_TENSOR_DESCRIPTOR: e = fin_tensor(d); break;
    case CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR: e = fin_conv(d); break;
    case CUDNN_BACKEND_POINTWISE_DESCRIPTOR: {
        if (!has(d, CUDNN_ATTR_POINTWISE_MODE) || !has(d, CUDNN_ATTR_POINTWISE_MATH_PREC)) return CUDNN_STATUS_BAD_PARAM;
        const cudnnPointwiseMode_t m = get1<cudnnPointwiseMode_t>(d, CUDNN_ATTR_POINTWISE_MODE);
        if (m != CUDNN_POINTWISE_ADD && m != CUDNN_POINTWISE_IDENTITY) e = CUDNN_STATUS_NOT_SUPPORTED;
        break;
    }
    case CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR: e = fin_conv_op(d); break;
    case CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR: e = fin_pw_op(d); break;
    case CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR: e = fin_sdpa_op(d); break;
    case CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR: e = fin_graph(d); break;
    case CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR:
        if (!has(d, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH) || !has(d, CUDNN_ATTR_ENGINEHEUR_MODE))
            return CUDNN_STATUS_BAD_PARAM;
        d->graph = sub(d, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH);
        break;
    case CUDNN_BACKEND_ENGINECFG_DESCRIPTOR: return CUDNN_STATUS_BAD_PARAM; /* filled by the heuristics */
    case CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR: {
        desc *cfg = sub(d, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG);
        if (!cfg || !has(d, CUDNN_ATTR_EXECUTION_PLAN_HANDLE) ||
            !handles().count(get1<cudnnHandle_t>(d, CUDNN_ATTR_EXECUTION_PLAN_HANDLE)))
            return CUDNN_STATUS_BAD_PARAM;
        if (!live().count(cfg->graph)) return CUDNN_STATUS_BAD_PARAM;
        d->graph = cfg->graph;
        /* a workspace the caller must provide: one f32 per output row (the SDPA's softmax statistics,
         * the conv's accumulation tile), so the variant pack's workspace is exercised */
        const desc *op = graph_ops(d->graph)[0];
        std::vector<desc *> in, out;
        op_tensors(op, in, out);
        d->ws = (int64_t)sizeof(float) * out[0]->t.dims[0] * out[0]->t.dims[1] * out[0]->t.dims[2];
        break;
    }
    case CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR: {
        if (!has(d, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS) || !has(d, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS) ||
            !has(d, CUDNN_ATTR_VARIANT_PACK_WORKSPACE))
            return CUDNN_STATUS_BAD_PARAM;
        const auto u = getv<int64_t>(d, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS);
        if ((int64_t)u.size() != d->a.at(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS).count) return CUDNN_STATUS_BAD_PARAM;
        if (std::set<int64_t>(u.begin(), u.end()).size() != u.size()) return CUDNN_STATUS_BAD_PARAM_DUPLICATED_ENTRIES;
        break;
    }
    default: return CUDNN_STATUS_BAD_PARAM;
    }
    if (e != CUDNN_STATUS_SUCCESS) return e;
    if ((e = inject("cudnnBackendFinalize", CUDNN_STATUS_INTERNAL_ERROR))) return e;
    d->finalized = true;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnBackendGetAttribute(cudnnBackendDescriptor_t const p, cudnnBackendAttributeName_t name,
                                       cudnnBackendAttributeType_t type, int64_t requested, int64_t *count, void *v) {
    desc *d = D(p);
    if (!d) return CUDNN_STATUS_BAD_PARAM;
    if (!d->finalized) return CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED;
    if (!count) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
    if (d->type == CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR && name == CUDNN_ATTR_ENGINEHEUR_RESULTS) {
        if (type != CUDNN_TYPE_BACKEND_DESCRIPTOR) return CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE;
        const int64_t n = live().count(d->graph) && engine_for(d->graph) ? 1 : 0;
        if (requested <= 0) {
            *count = n;
            return CUDNN_STATUS_SUCCESS;
        }
        if (!v) return CUDNN_STATUS_BAD_PARAM_NULL_POINTER;
        const int64_t k = requested < n ? requested : n;
        for (int64_t i = 0; i < k; i++) {
            desc *c = D(static_cast<void **>(v)[i]);
            if (!c || c->type != CUDNN_BACKEND_ENGINECFG_DESCRIPTOR) return CUDNN_STATUS_BAD_PARAM_DESCRIPTOR_TYPE;
            c->graph = d->graph;
            c->finalized = true;
        }
        *count = k;
        return CUDNN_STATUS_SUCCESS;
    }
    if (d->type == CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR && name == CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE) {
        if (type != CUDNN_TYPE_INT64) return CUDNN_STATUS_BAD_PARAM_ATTRIBUTE_TYPE;
        if (requested < 1 || !v) return CUDNN_STATUS_BAD_PARAM;
        *static_cast<int64_t *>(v) = d->ws;
        *count = 1;
        return CUDNN_STATUS_SUCCESS;
    }
    return CUDNN_STATUS_BAD_PARAM; /* not in the stand-in's subset */
}

cudnnStatus_t cudnnBackendExecute(cudnnHandle_t h, cudnnBackendDescriptor_t plan, cudnnBackendDescriptor_t pack) {
    const char *call = "cudnnBackendExecute";
    desc *pl = D(plan), *vp = D(pack);
    if (!handles().count(h) || !pl || !vp || pl->type != CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR ||
        vp->type != CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR)
        return CUDNN_STATUS_BAD_PARAM;
    if (!pl->finalized || !vp->finalized) return CUDNN_STATUS_BAD_PARAM_NOT_FINALIZED;
    if (!live().count(pl->graph)) return CUDNN_STATUS_BAD_PARAM; /* the graph was destroyed under the plan */
    const std::vector<desc *> ops = graph_ops(pl->graph);
    for (desc *op : ops)
        if (!op) return CUDNN_STATUS_BAD_PARAM;
    const auto uids = getv<int64_t>(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS);
    const auto ptrs = getv<void *>(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS);
    void *ws = get1<void *>(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE);
    if (lf_emu_device_op(call, h->stream) != 0) return CUDNN_STATUS_EXECUTION_FAILED;
    std::map<desc *, bound> m;
    std::vector<std::vector<float>> scratch;
    for (desc *op : ops) {
        std::vector<desc *> in, out;
        op_tensors(op, in, out);
        in.insert(in.end(), out.begin(), out.end());
        for (desc *t : in) {
            if (m.count(t)) continue;
            const tensor_info &ti = t->t;
            if (ti.virt) { /* f32 scratch through the same strides */
                scratch.emplace_back((size_t)extent(ti), NAN);
                m[t] = bound{scratch.back().data(), CUDNN_DATA_FLOAT, &ti};
                continue;
            }
            size_t i = 0;
            while (i < uids.size() && uids[i] != ti.uid) i++;
            if (i == uids.size() || !ptrs[i]) return CUDNN_STATUS_BAD_PARAM; /* a tensor without memory */
            if (!ti.by_value) {
                if ((uintptr_t)ptrs[i] % (uintptr_t)ti.align) return CUDNN_STATUS_BAD_PARAM_MISALIGNED_POINTER;
                if (!lf_emu_dev_range(call, "tensor", ptrs[i], (size_t)extent(ti) * dt_size(ti.dt)))
                    return CUDNN_STATUS_EXECUTION_FAILED;
            }
            m[t] = bound{ptrs[i], ti.dt, &ti};
        }
    }
    if (pl->ws > 0) {
        if (!ws || !lf_emu_dev_range(call, "workspace", ws, (size_t)pl->ws)) return CUDNN_STATUS_EXECUTION_FAILED;
        std::memset(ws, 0xFF, (size_t)pl->ws);
    }
    for (desc *op : ops) {
        if (op->type == CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR) run_conv(op, m);
        else if (op->type == CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR) run_pw(op, m);
        else run_sdpa(op, m);
    }
    return CUDNN_STATUS_SUCCESS;
}

} // extern "C"
