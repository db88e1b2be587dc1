/* BERT WordPiece tokenizer, uncased: the ids HF's BertTokenizer (do_lower_case=True) gives for
 * bert-base-uncased's vocab.txt.
 *
 * Pipeline, as in HF's BertNormalizer + BertPreTokenizer + WordPiece:
 *  1. clean: NUL, U+FFFD and control characters (Cc, Cf, Co; tab, LF, CR excepted) are dropped;
 *     tab, LF, CR, U+2028, U+2029 and Zs spaces become a space;
 *  2. CJK ideographs (the ranges of BERT's _is_chinese_char) get a space on each side;
 *  3. lower-case as Python's str.lower() (final sigma included), then NFD with Mn marks dropped;
 *  4. split on spaces; each punctuation character (ASCII 33-47, 58-64, 91-96, 123-126 and Unicode
 *     P*) is a word of its own;
 *  5. greedy longest-match-first WordPiece, continuations prefixed "##"; a word of more than 100
 *     code points, or one that cannot be covered by vocabulary entries, becomes one [UNK].
 * Unicode facts come from CPython's unicodedata (dataset/wordpiece_tables.c).
 *
 * Caveats:
 *  - Input is UTF-8. Malformed sequences (bad lead or continuation bytes, overlong forms,
 *    surrogates, code points above U+10FFFF) read as U+FFFD and so are dropped in step 1, like
 *    Python's errors="replace" decoding followed by BertTokenizer; "a\xffb" reads as "ab".
 *  - Unassigned code points (Cn) are kept; Python's BertTokenizer drops them as control characters,
 *    HF's Rust and JS tokenizers keep them. Either way they rarely survive as anything but [UNK].
 *  - Text that spells a special token ("[CLS]", "[SEP]", ...) is ordinary text here ("[", "cl",
 *    "##s", "]"); HF matches those spellings as the special ids. Conversation text never means them.
 *  - CJK ideographs beyond the BMP get their spaces as in HF Python and Rust; HF's tokenizers.js
 *    (the test reference) spaces only BMP ideographs.
 *  - Canonical reordering of NFD is not done: it only matters between combining marks other than
 *    Mn, which no Latin, Greek, Cyrillic or CJK text has.
 *
 * Thread safety: a loaded vocabulary is read-only; any number of threads may encode with one
 * vocabulary at once. Loading and freeing must not overlap with use. */
#ifndef EMPD_DATASET_WORDPIECE_H
#define EMPD_DATASET_WORDPIECE_H

#include <stddef.h>
#include <stdint.h>

/* Words longer than this many code points (after normalization) become [UNK]. */
#define WP_MAX_WORD_CHARS 100

typedef struct wp_vocab wp_vocab;

/* Loads vocab.txt: one token per line ("\n" ends a line; the last line may lack it), id = line
 * number from 0. A token listed twice keeps its last id, as HF does. The file must hold [UNK], [CLS]
 * and [SEP]. Returns 0 and sets *out, or -1 with a one-line message naming the path (cannot open,
 * read error, empty file, NUL byte in line N, missing [UNK]/[CLS]/[SEP], out of memory). */
int wp_vocab_load(const char *path, wp_vocab **out, char *err, size_t errlen);

/* Frees a vocabulary; NULL is allowed. */
void wp_vocab_free(wp_vocab *v);

/* Number of lines (ids) in the vocabulary file. */
size_t wp_vocab_size(const wp_vocab *v);

/* Id of a token spelled exactly as in vocab.txt ("##ing", "[CLS]"), or -1 when absent. */
int wp_vocab_id(const wp_vocab *v, const char *token);

/* The token of id as spelled in vocab.txt ("##ing", "[CLS]"), or NULL for an id outside the vocabulary. */
const char *wp_vocab_token(const wp_vocab *v, size_t id);

/* MD5 of the file's bytes as 32 lower-case hex digits (the manifest records it). */
const char *wp_vocab_md5(const wp_vocab *v);

/* Ids of len bytes of UTF-8 text, without [CLS]/[SEP]. Writes at most cap ids to ids (which may be
 * NULL when cap is 0) and stores the full count in *n, so *n > cap means truncated output. Allocates
 * nothing. Returns 0, or -1 when v is NULL, utf8 is NULL with len > 0, or ids is NULL with cap > 0
 * (then *n is 0). */
int wp_encode(const wp_vocab *v, const char *utf8, size_t len, uint32_t *ids, size_t cap, size_t *n);

/* [CLS] ids [SEP], cut to max_len ids (max_len >= 2) by dropping ids from the end of the text
 * while [SEP] stays last, as HF's truncation does. Returns the count written (<= max_len), or 0
 * when max_len < 2 or an argument is invalid as for wp_encode. */
size_t wp_encode_special(const wp_vocab *v, const char *utf8, size_t len, uint32_t *ids, size_t max_len);

#endif
