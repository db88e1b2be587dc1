/* record.h: one sample of the shard format, version 2 (byte layout in dataset/FORMAT.md).
 *
 * A sample is one labeled conversation's last turn: its id, labels, twelve metadata ids, the context's
 * tokens and up to DS_MAX_UTT utterances, each with role, index, avatar, presence bits, tokens and (version
 * 2) its media: a 16 kHz mono int16 waveform (section WAVE) and DS_N_FRAMES video frames stored as JPEG or
 * raw RGB (section FRMS). A version-1 record has neither section; its utterances have no media.
 *
 * On disk a record is   "EMPR" | u16 version | u16 flags | u32 payload length | payload | u32 CRC-32,
 * little-endian, the CRC (zlib's) covering header and payload. The payload is a table of tagged
 * sections; readers skip sections they do not know, which is how version 2 adds media without
 * changing how version 1 data are found.
 *
 * Return codes: every function of record.h, shard.h, manifest.h and loader.h returns DS_SHARD_OK (0) or one
 * of the negative DS_SHARD_E* codes below, and on failure writes one line into the caller's err buffer
 * (err may be NULL, errlen 0). Nothing here prints, exits, or keeps global state.
 *
 * Host requirement: little-endian (checked at compile time); decoded token arrays are the record's own
 * bytes, which only a little-endian host can read as uint16_t in place.
 */
#ifndef EMPD_DATASET_RECORD_H
#define EMPD_DATASET_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define DS_SHARD_OK        0
#define DS_SHARD_EINVAL   (-1)  /* the caller passed something out of range */
#define DS_SHARD_ECORRUPT (-2)  /* a record, shard or manifest is malformed or fails its checksum */
#define DS_SHARD_EIO      (-3)  /* a file operation failed (the message carries strerror) */
#define DS_SHARD_ENOMEM   (-4)
#define DS_SHARD_ELMDB    (-5)  /* LMDB returned an error (the message carries mdb_strerror) */
#define DS_SHARD_ENOENT   (-6)  /* a split, file or index does not exist */

#define DS_RECORD_MAGIC     "EMPR"
#define DS_RECORD_VERSION   2      /* the version this code writes */
#define DS_RECORD_HEADER    12     /* magic, version, flags, payload length */
#define DS_RECORD_OVERHEAD  16     /* header + trailing CRC */

#define DS_META_N       12
#define DS_MAX_UTT      10
#define DS_CONV_ID_MAX  31         /* bytes, without the terminating NUL */

/* Metadata slots, in stored order. 0 means unknown or missing; other values index the manifest's
 * vocabularies (built from train only). The last three are written knowing the emotion: they leak the
 * label and must stay off unless a run reproduces the seed on purpose. */
enum ds_meta_slot {
    DS_META_SPEAKER_AGE, DS_META_SPEAKER_GENDER, DS_META_SPEAKER_TIMBRE, DS_META_SPEAKER_ID,
    DS_META_LISTENER_AGE, DS_META_LISTENER_GENDER, DS_META_LISTENER_TIMBRE, DS_META_LISTENER_ID,
    DS_META_TOPIC,
    DS_META_EVENT_SCENARIO, DS_META_EMOTION_CAUSE, DS_META_GOAL_TO_RESPONSE
};
#define DS_META_FIRST_LEAKING DS_META_EVENT_SCENARIO

enum ds_role { DS_ROLE_SPEAKER = 0, DS_ROLE_LISTENER = 1, DS_ROLE_LISTENER_RESPONSE = 2 };

/* Utterance presence bits. AUDIO/VIDEO: the utterance has that medium in the record. The *_BAD bits say why
 * a medium is absent when its file existed but could not be decoded (counted, listed in the manifest);
 * absent without a BAD bit means the file was missing or the modality was not sharded. A medium is never
 * both present and bad. */
#define DS_PRESENT_AUDIO     0x01u
#define DS_PRESENT_VIDEO     0x02u
#define DS_PRESENT_AUDIO_BAD 0x04u
#define DS_PRESENT_VIDEO_BAD 0x08u
#define DS_PRESENT_ALL_BITS  0x0fu

/* Media of version 2. */
#define DS_AUDIO_RATE   16000      /* waveform samples per second, mono int16 */
#define DS_N_FRAMES     8          /* frames per utterance with video */
#define DS_FRAME_RAW    0          /* frame storage: width*height*3 bytes RGB, row-major */
#define DS_FRAME_JPEG   1          /* frame storage: one baseline JPEG (libturbojpeg), 3 components */

typedef struct {
    uint8_t role;              /* enum ds_role */
    uint8_t presence;          /* DS_PRESENT_* bits */
    uint16_t index;            /* 0-based utterance index in the conversation */
    int16_t avatar;            /* avatar ID, -1 unknown */
    uint16_t n_tokens;
    const uint16_t *tokens;    /* [n_tokens] */
    /* Media (version 2). For encoding the caller owns the bytes; after decoding they point into the record. */
    uint32_t n_samples;        /* waveform length; > 0 exactly when presence has DS_PRESENT_AUDIO */
    const int16_t *wave;       /* [n_samples], DS_AUDIO_RATE mono */
    uint32_t frame_len[DS_N_FRAMES];       /* bytes of each frame; all > 0 exactly when DS_PRESENT_VIDEO */
    const uint8_t *frame[DS_N_FRAMES];     /* JPEG bytes, or frame_w*frame_h*3 RGB bytes when raw */
} ds_utt;

/* One sample. For encoding the caller owns every pointer; after decoding, tokens point into the decoded
 * buffer (see ds_record_decode) and everything else is copied. */
typedef struct {
    uint16_t version;          /* decode: the record's version; ignored by encode (writes DS_RECORD_VERSION) */
    uint16_t flags;            /* decode: the record's flags; ignored by encode (writes 0) */
    uint32_t sample_index;     /* position within its split; also the LMDB key */
    char conversation_id[DS_CONV_ID_MAX + 1];   /* NUL-terminated, 1..31 bytes */
    int8_t label7;             /* 0..6, -1 unlabeled */
    int8_t label32;            /* 0..31, -1 unlabeled */
    int32_t meta[DS_META_N];   /* enum ds_meta_slot order, each >= 0 */
    uint16_t n_ctx;
    const uint16_t *ctx;       /* [n_ctx] context tokens */
    int n_utt;                 /* 0..DS_MAX_UTT */
    ds_utt utt[DS_MAX_UTT];
    /* Which media sections the record has (version 2): when has_audio is 0 no utterance may have audio, and
     * likewise for video. The frame geometry holds for every frame of the record. */
    uint8_t has_audio, has_video;
    uint8_t frame_format;      /* DS_FRAME_RAW or DS_FRAME_JPEG */
    uint16_t frame_w, frame_h; /* 1..4096 each when has_video */
} ds_record;

/* A growable byte buffer. Zero-initialise it ({0}) before first use; ds_buf_free releases it. */
typedef struct {
    unsigned char *data;
    size_t len, cap;
} ds_buf;

void ds_buf_free(ds_buf *b);

/* Encode r into out, replacing its contents (out->len becomes the record's size).
 * Returns DS_SHARD_EINVAL when a field is out of range (the message names it: "utt[3].role = 5 (expected
 * 0..2)"), DS_SHARD_ENOMEM when the buffer cannot grow. */
int ds_record_encode(const ds_record *r, ds_buf *out, char *err, size_t errlen);

/* Decode the len bytes at data into r, zero-copy: r->ctx and r->utt[i].tokens point into data, so they
 * stay valid only while data does (for a record read from a shard: while the read transaction that
 * returned it is open, see shard.h).
 * Checks, in order: the length covers the header, magic, version >= 1, length == payload + 16, alignment,
 * the CRC, no unknown incompatible flag bits, the section table (unknown sections are skipped), then every
 * field's range. No byte outside [data, data + len) is ever read, whatever the input.
 * data must be 2-byte aligned (malloc, ds_buf and LMDB values are). Returns DS_SHARD_ECORRUPT with the
 * failing field named ("crc mismatch (stored 0x1234abcd, computed 0x99aa0011)", "UTTS.utt[3].role = 7
 * (expected 0..2)"), DS_SHARD_EINVAL for a NULL or misaligned buffer. On failure *r is zeroed or partly
 * filled and must not be used. */
int ds_record_decode(const void *data, size_t len, ds_record *r, char *err, size_t errlen);

#endif
