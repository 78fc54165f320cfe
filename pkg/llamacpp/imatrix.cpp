// Importance matrices for llama.cpp's quantizer; see imatrix.h. The
// collection follows llama-imatrix (tools/imatrix/imatrix.cpp,
// IMatrixCollector::collect_imatrix, llama.cpp ec98e2002) for MUL_MAT and
// MUL_MAT_ID (each expert's matrix summing the src1 rows routed to it):
// float sums of x*x per column of src1 and a row count per column;
// llama-quantize's loader divides the two.
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "ggml.h"
#include "ggml-backend.h"
#include "imatrix.h"

struct ld_imatrix_stats {
    std::vector<float> sums;
    std::vector<int64_t> counts;
};

struct ld_imatrix {
    std::unordered_map<std::string, ld_imatrix_stats> stats;
    std::vector<std::string> order;
};

extern "C" ld_imatrix *ld_imatrix_new(void) { return new ld_imatrix(); }

extern "C" void ld_imatrix_free(ld_imatrix *im) { delete im; }

// ld_host_data returns t's data readable from the CPU, copied into copy when
// t lives in another backend's buffer.
static const char *ld_host_data(const struct ggml_tensor *t, std::vector<char> &copy) {
    if (t->buffer != NULL && !ggml_backend_buffer_is_host(t->buffer)) {
        copy.resize(ggml_nbytes(t));
        ggml_backend_tensor_get(t, copy.data(), 0, copy.size());
        return copy.data();
    }
    return (const char *)t->data;
}

// ld_stats returns the statistics of weight name with n entries, made on
// first use.
static ld_imatrix_stats &ld_stats(ld_imatrix *im, const char *name, int64_t n) {
    auto it = im->stats.find(name);
    if (it == im->stats.end()) {
        it = im->stats.emplace(name, ld_imatrix_stats()).first;
        it->second.sums.assign(n, 0.0f);
        it->second.counts.assign(n, 0);
        im->order.push_back(name);
    }
    return it->second;
}

// ld_imatrix_cb_id collects a MUL_MAT_ID: for each expert ex, the src1 rows
// of the (token, slot) pairs that ids routes to it (collect_imatrix's
// MUL_MAT_ID branch; i11 = slot % src1->ne[1] covers the broadcast src1 of
// the up and gate projections and the per-slot one of down).
static bool ld_imatrix_cb_id(struct ggml_tensor *t, bool ask, ld_imatrix *im) {
    const struct ggml_tensor *src0 = t->src[0];
    const struct ggml_tensor *src1 = t->src[1];
    const struct ggml_tensor *ids = t->src[2];
    if (src0 == NULL || src1 == NULL || ids == NULL || strncmp(src0->name, "blk.", 4) != 0 ||
        src1->type != GGML_TYPE_F32 || ids->type != GGML_TYPE_I32) {
        return ask ? false : true;
    }
    if (ask) {
        return true;
    }
    std::vector<char> c1, ci;
    const char *data = ld_host_data(src1, c1);
    const char *idd = ld_host_data(ids, ci);
    if (data == NULL || idd == NULL) {
        return true;
    }
    const int64_t n0 = src1->ne[0];
    const int64_t n_as = src0->ne[2];
    ld_imatrix_stats &e = ld_stats(im, src0->name, n0 * n_as);
    for (int64_t it = 0; it < ids->ne[1]; ++it) {
        for (int64_t id = 0; id < ids->ne[0]; ++id) {
            const int32_t ex = *(const int32_t *)(idd + it * ids->nb[1] + id * ids->nb[0]);
            if (ex < 0 || ex >= n_as) {
                continue;
            }
            const int64_t i11 = id % src1->ne[1];
            const float *x = (const float *)(data + i11 * src1->nb[1] + it * src1->nb[2]);
            for (int64_t j = 0; j < n0; ++j) {
                e.sums[ex * n0 + j] += x[j] * x[j];
                e.counts[ex * n0 + j]++;
            }
        }
    }
    return true;
}

static bool ld_imatrix_cb(struct ggml_tensor *t, bool ask, void *user_data) {
    ld_imatrix *im = (ld_imatrix *)user_data;
    if (t->op == GGML_OP_MUL_MAT_ID) {
        return ld_imatrix_cb_id(t, ask, im);
    }
    if (t->op != GGML_OP_MUL_MAT) {
        return ask ? false : true;
    }
    const struct ggml_tensor *src0 = t->src[0];
    const struct ggml_tensor *src1 = t->src[1];
    if (src0 == NULL || src1 == NULL || strncmp(src0->name, "blk.", 4) != 0 || src1->type != GGML_TYPE_F32) {
        return ask ? false : true;
    }
    if (ask) {
        return true;
    }
    std::vector<char> copy;
    const char *data = ld_host_data(src1, copy);
    if (data == NULL) {
        return true;
    }
    const int64_t n0 = src1->ne[0];
    const int64_t nmat = src0->ne[2] * src0->ne[3];
    ld_imatrix_stats &e = ld_stats(im, src0->name, n0 * nmat);
    for (int64_t i3 = 0; i3 < src1->ne[3]; ++i3) {
        for (int64_t i2 = 0; i2 < src1->ne[2]; ++i2) {
            // src0 broadcast over dims 2 and 3, as ggml_compute_forward_mul_mat
            const int64_t m = (i2 / (src1->ne[2] / src0->ne[2])) + src0->ne[2] * (i3 / (src1->ne[3] / src0->ne[3]));
            for (int64_t i1 = 0; i1 < src1->ne[1]; ++i1) {
                const float *x = (const float *)(data + i1 * src1->nb[1] + i2 * src1->nb[2] + i3 * src1->nb[3]);
                for (int64_t j = 0; j < n0; ++j) {
                    e.sums[m * n0 + j] += x[j] * x[j];
                    e.counts[m * n0 + j]++;
                }
            }
        }
    }
    return true;
}

extern "C" int ld_imatrix_collect(struct llama_model *model, const llama_token *tokens, int n_tokens, int threads, ld_imatrix *im) {
    struct llama_context_params p = llama_context_default_params();
    p.n_ctx = (uint32_t)n_tokens;
    p.n_batch = (uint32_t)n_tokens;
    p.n_ubatch = (uint32_t)n_tokens;
    p.n_seq_max = 1;
    p.n_threads = threads;
    p.n_threads_batch = threads;
    p.no_perf = true;
    p.cb_eval = ld_imatrix_cb;
    p.cb_eval_user_data = im;
    struct llama_context *ctx = llama_init_from_model(model, p);
    if (ctx == NULL) {
        return -1;
    }
    struct llama_batch batch = llama_batch_init(n_tokens, 0, 1);
    batch.n_tokens = n_tokens;
    for (int i = 0; i < n_tokens; i++) {
        batch.token[i] = tokens[i];
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1; // every position an output, as llama-imatrix asks (so the last layer sees every token)
    }
    int rc = llama_decode(ctx, batch);
    llama_batch_free(batch);
    llama_free(ctx);
    return rc;
}

extern "C" int ld_imatrix_count(const ld_imatrix *im) { return (int)im->order.size(); }

extern "C" const char *ld_imatrix_name(const ld_imatrix *im, int i) { return im->order[i].c_str(); }

extern "C" int64_t ld_imatrix_len(const ld_imatrix *im, int i) {
    return (int64_t)im->stats.at(im->order[i]).sums.size();
}

extern "C" void ld_imatrix_means(const ld_imatrix *im, int i, float *dst) {
    const ld_imatrix_stats &e = im->stats.at(im->order[i]);
    for (size_t j = 0; j < e.sums.size(); j++) {
        dst[j] = e.counts[j] > 0 ? e.sums[j] / (float)e.counts[j] : 0.0f;
    }
}

extern "C" uint32_t ld_quantize(const char *in, const char *out, const struct llama_model_quantize_params *p,
                                const char **names, const float **values, const int64_t *lens, int n) {
    std::unordered_map<std::string, std::vector<float>> imatrix;
    for (int i = 0; i < n; i++) {
        imatrix[names[i]] = std::vector<float>(values[i], values[i] + lens[i]);
    }
    struct llama_model_quantize_params q = *p;
    q.imatrix = n > 0 ? &imatrix : NULL;
    return llama_model_quantize(in, out, &q);
}
