/* Where empd finds the files it ships with or that launch/setup fetched. */
#ifndef EMPD_TRAINER_PATHS_H
#define EMPD_TRAINER_PATHS_H

#include <stddef.h>

/* The BERT vocab.txt: $EMPD_VOCAB, else third_party/bert-base-uncased/vocab.txt beside the
 * binary's build folder (../ of build/empd), else under the current folder. Writes the first
 * existing candidate (or the last tried) into out; returns 1 when it exists. */
int tr_default_vocab(char *out, size_t outlen);

#endif
