/* Fuzzes am_corpus_load (dataset/avamerg.c), the reader of AvaMERG's train.json / test.json, in both error
 * modes. A load that works must hold what avamerg.h promises (counts that add up, utterances within
 * AM_MAX_UTT with text, labels consistent with the emotion) and come from one whole JSON document; a failed
 * load leaves an empty corpus and one line. Loading with on_error=fail works exactly when the skip load skipped
 * nothing, and then agrees. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/avamerg.h"
#include "tests/fuzz/check.h"
#include "tests/fuzz/memfile.h"

static void check_corpus(const am_corpus *c)
{
    CHECK(c->n + c->n_empty_turns + c->n_unknown_label + c->n_malformed == c->n_conversations);
    CHECK(c->n_skipped == c->n_unknown_label + c->n_malformed);
    for (size_t i = 0; i < c->n_skipped; i++)
        CHECK(c->skipped[i] && c->skipped[i][0]);
    for (size_t i = 0; i < c->n; i++) {
        const am_sample *s = &c->v[i];
        CHECK(s->conversation_id && s->context);
        CHECK(s->n_utt >= 0 && s->n_utt <= AM_MAX_UTT);
        CHECK(s->first_turn_id >= 0 && s->first_turn_id <= s->last_turn_id && s->n_turns >= 1);
        for (int k = 0; k < s->n_utt; k++) {
            const am_utt *u = &s->utt[k];
            CHECK(u->text && u->index >= 0 && u->role >= AM_ROLE_SPEAKER && u->role <= AM_ROLE_RESPONSE);
            CHECK(u->avatar_id == (u->index % 2 == 0 ? s->speaker.id : s->listener.id));
        }
        CHECK(s->label32 == am_label32_of(s->emotion));
        CHECK(s->label7 == am_label7_of_label32(s->label32));
    }
}

static int load(const uint8_t *in, size_t n, enum am_on_error mode, am_corpus *c)
{
    char err[512];
    err[0] = 0;
    int rc = am_corpus_load(memfile_put(in, n), mode, c, err, sizeof err);
    if (rc == AM_OK) {
        check_corpus(c);
        return rc;
    }
    CHECK(rc < 0 && err[0] != 0);
    CHECK(c->v == NULL && c->n == 0 && c->skipped == NULL && c->n_skipped == 0 && c->n_conversations == 0);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
    am_corpus skip, fail;
    int rs = load(in, n, AM_ON_ERROR_SKIP, &skip);
    int rf = load(in, n, AM_ON_ERROR_FAIL, &fail);
    CHECK((rf == AM_OK) == (rs == AM_OK && skip.n_skipped == 0));
    if (rs == AM_OK)
        CHECK(check_whole_json(in, n));
    if (rf == AM_OK) {
        CHECK(fail.n == skip.n && fail.n_conversations == skip.n_conversations);
        for (size_t i = 0; i < fail.n; i++)
            CHECK(strcmp(fail.v[i].conversation_id, skip.v[i].conversation_id) == 0 &&
                  fail.v[i].n_utt == skip.v[i].n_utt && fail.v[i].label32 == skip.v[i].label32);
    }
    am_corpus_free(&skip);
    am_corpus_free(&fail);
    return 0;
}
