/* The run's final weights: RUNDIR/model.safetensors (every parameter by name) and the encoders as
 * Hugging Face model folders. */
#include <stdio.h>
#include <stdlib.h>

#include "models/hf_export.h"
#include "models/safetensors.h"
#include "trainer/run.h"

/* The fusion models' encoders also as Hugging Face model folders (RUNDIR/hf/bert, RUNDIR/hf/wav2vec2) in
 * the layout save_pretrained writes, which model.*.config and model.*.weights load as they are. */
static int export_encoders(tr_run *r)
{
    if (r->model.kind == TR_MODEL_TEXT)
        return 0;
    mf_model *m = &r->model.fusion;
    char dir[4200];
    char *json = bert_config_to_hf(&m->cfg.bert);
    snprintf(dir, sizeof dir, "%s/hf/bert", r->out);
    int rc = json ? hf_export(&m->params, "bert", dir, json, r->err, sizeof r->err) : -1;
    free(json);
    if (rc == 0 && m->cfg.kind == MF_AUDIO) {
        json = w2v_config_to_hf(&m->cfg.audio);
        snprintf(dir, sizeof dir, "%s/hf/wav2vec2", r->out);
        rc = json ? hf_export(&m->params, "wav2vec2", dir, json, r->err, sizeof r->err) : -1;
        free(json);
    }
    if (rc && !r->err[0])
        snprintf(r->err, sizeof r->err, "export: out of memory");
    return rc;
}

int tr_run_export(tr_run *r)
{
    const mp_params *ps = tr_model_params(&r->model);
    /* Training is over: weights on a GPU come home, so the writers see host memory. */
    for (int i = 0; r->dev.type != TC_CPU && i < ps->n; i++)
        if (tc_param_to_device(ps->v[i].t, (tc_device){TC_CPU, 0}) != TC_OK) {
            snprintf(r->err, sizeof r->err, "export: cannot copy '%s' to host memory: %s", ps->v[i].name,
                     tc_last_error());
            return -1;
        }
    st_tensor *v = calloc((size_t)ps->n, sizeof *v);
    if (!v) {
        snprintf(r->err, sizeof r->err, "export: out of memory");
        return -1;
    }
    for (int i = 0; i < ps->n; i++) {
        v[i] = (st_tensor){.name = ps->v[i].name, .dtype = ST_F32, .ndim = tc_ndim(ps->v[i].t),
                           .data = tc_data_ptr(ps->v[i].t),
                           .nbytes = (size_t)tc_numel(ps->v[i].t) * sizeof(float)};
        for (int d = 0; d < v[i].ndim; d++)
            v[i].shape[d] = tc_size(ps->v[i].t, d);
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", r->out);
    int rc = r->rank == 0 ? st_write(path, v, (size_t)ps->n, NULL, 0, r->err, sizeof r->err) : 0;
    if (rc == 0 && r->save_all_ranks) {
        snprintf(path, sizeof path, "%s/model-rank%d.safetensors", r->out, r->rank);
        rc = st_write(path, v, (size_t)ps->n, NULL, 0, r->err, sizeof r->err);
    }
    free(v);
    if (rc == 0 && r->rank == 0)
        rc = export_encoders(r);
    return rc;
}

