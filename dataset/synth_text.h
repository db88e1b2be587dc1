/* synth_text.h: a mini-AvaMERG text corpus (train.json + test.json in the real files' layout), for tests,
 * the quickstart and `empd synth`. Media are not written here.
 *
 * What it promises:
 *   - the full train.json schema (profiles with age/gender/timbre/ID, topic, cumulative turns keyed by
 *     string turn_id, context, dialogue_history, response, chain_of_empathy with its four fields);
 *     test.json as the real one: unlabeled, only conversation_id and turns, about a fifth with `turns: []`;
 *   - the same (n_conversations, seed) gives the same bytes on every machine (own PRNG, no clock, no rand());
 *   - all 32 raw labels (when n_conversations >= 32) with the real files' imbalance (anxious about 29%,
 *     sad 9%, annoyed 4%, ..., faithful about 1.2%), so the 7-class majority (sad) is about half;
 *   - a learnable, noisy text signal: in about 62% of the conversations the speaker's utterances carry
 *     words of the label's 7-class emotion (plus some of other classes); in the rest they hold only neutral
 *     filler or cues of random classes. A bag-of-words classifier reaches roughly 65-80%, never 100%;
 *   - the real files' mess at small rates: turn "0" missing, a gap in turn ids, turns out of order, a missing
 *     topic, the same avatar ID on both sides, an empty utterance, a first turn without chain_of_empathy
 *     (so the seed split drops that conversation), curly quotes, accents and emoji; 1 to 4 turns each.
 * chain_of_empathy's texts name the raw emotion, like the real ones (they leak the label).
 */
#ifndef EMPD_DATASET_SYNTH_TEXT_H
#define EMPD_DATASET_SYNTH_TEXT_H

#include <stddef.h>
#include <stdint.h>

#define SYNTH_TEXT_OK 0
#define SYNTH_TEXT_ERR_ARG (-1)   /* n_conversations outside [1, SYNTH_TEXT_MAX_CONVERSATIONS] */
#define SYNTH_TEXT_ERR_IO (-2)    /* out_dir cannot be created, or a file cannot be written */
#define SYNTH_TEXT_ERR_NOMEM (-3)

/* Conversation ids are 5 digits, as in the real files; this bound keeps train and test ids inside them. */
#define SYNTH_TEXT_MAX_CONVERSATIONS 30000

/* Writes out_dir/train.json (n_conversations labeled conversations) and out_dir/test.json
 * (n_conversations / 5 + 1 unlabeled ones, ids after train's). out_dir is created if missing (its parent
 * must exist). Each file is written to a temporary name, fsync'd and renamed, so a reader never sees half a
 * file. Returns SYNTH_TEXT_OK or a negative SYNTH_TEXT_ERR_* with one line in err.
 * About 2.3 KB per conversation in train.json; 300 conversations take ~10 ms, 30,000 about 1.5 s. */
int synth_text_write(const char *out_dir, int n_conversations, uint64_t seed, char *err, size_t errlen);

#endif
