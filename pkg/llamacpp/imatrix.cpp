// Importance matrices for llama.cpp's quantizer; see imatrix.h. The
// collection follows llama-imatrix (tools/imatrix/imatrix.cpp,
// IMatrixCollector::collect_imatrix, llama.cpp ec98e2002) for plain
// MUL_MAT: float sums of x*x per column of src1 and a row count per
// column; llama-quantize's loader divides the two.
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

static bool ld_imatrix_cb(struct ggml_tensor *t, bool ask, void *user_data) {
    ld_imatrix *im = (ld_imatrix *)user_data;
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
    const char *data = (const char *)src1->data;
    if (src1->buffer != NULL && !ggml_backend_buffer_is_host(src1->buffer)) {
        copy.resize(ggml_nbytes(src1));
        ggml_backend_tensor_get(src1, copy.data(), 0, copy.size());
        data = copy.data();
    }
    if (data == NULL) {
        return true;
    }
    const int64_t n0 = src1->ne[0];
    const int64_t nmat = src0->ne[2] * src0->ne[3];
    std::string name(src0->name);
    auto it = im->stats.find(name);
    if (it == im->stats.end()) {
        it = im->stats.emplace(name, ld_imatrix_stats()).first;
        it->second.sums.assign(n0 * nmat, 0.0f);
        it->second.counts.assign(n0 * nmat, 0);
        im->order.push_back(name);
    }
    ld_imatrix_stats &e = it->second;
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
