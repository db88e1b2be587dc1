/* synth_media.c: plans the media of the mini-AvaMERG corpus (cues, people, sizes, mess), runs the speech
 * and video writers on a few threads, and adds the AppleDouble litter (see synth_media.h). */
#include "dataset/synth_media.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset/avamerg.h"
#include "dataset/error.h"
#include "dataset/fsync_dir.h"
#include "dataset/synth_media_internal.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Voice deltas (espeak pitch and range points, rate and volume factors) follow the usual acoustic
 * correlates of emotional speech; the face fields are in face units of synth_face.c. Index = label7. */
const sm_style sm_styles[7] = {
    /*          pitch range  rate  volume  open  smile width smirk  eye   brow  tilt  sneer */
    /* happy */ {12, 25, 0.08, 0.25, 0.35, 0.90, 1.15, 0.00, 0.75, 0.15, 0.0, 0.0},
    /* surpr */ {22, 40, 0.00, 0.30, 1.00, 0.00, 0.75, 0.00, 1.45, 1.00, 0.1, 0.0},
    /* angry */ {4, 20, 0.15, 0.55, 0.15, -0.45, 1.00, 0.00, 0.85, -0.60, -1.0, 0.0},
    /* fear  */ {16, -25, 0.22, -0.15, 0.65, -0.30, 1.25, 0.00, 1.45, 0.70, 1.0, 0.0},
    /* sad   */ {-15, -38, -0.25, -0.35, 0.05, -0.85, 0.90, 0.00, 0.60, -0.05, 0.9, 0.0},
    /* disg  */ {-8, -10, -0.12, 0.00, 0.20, -0.50, 0.90, 0.00, 0.60, -0.35, -0.4, 1.0},
    /* cont  */ {-5, -30, -0.08, 0.05, 0.05, 0.00, 1.00, 0.85, 0.80, 0.10, 0.0, 0.0},
};
const sm_style sm_neutral = {0, 0, 0, 0, 0.10, 0.00, 1.00, 0.00, 1.00, 0.00, 0.0, 0.0};

uint64_t sm_stream(uint64_t seed, const char *cid, int k, uint32_t purpose)
{
    sm_rng r = {seed ^ ((uint64_t)purpose << 32)};
    uint64_t h = sm_rng_next(&r);
    for (const unsigned char *p = (const unsigned char *)cid; *p; p++) {
        r.s = h ^ *p;
        h = sm_rng_next(&r);
    }
    r.s = h ^ (uint64_t)(uint32_t)(k + 1);
    return sm_rng_next(&r);
}

int sm_file_commit(const char *tmp, const char *path, long keep_bytes, char *err, size_t errlen)
{
    int fd = open(tmp, O_WRONLY);
    int ok = fd >= 0 && (keep_bytes < 0 || ftruncate(fd, keep_bytes) == 0) && fsync(fd) == 0;
    int saved = errno;
    if (fd >= 0 && close(fd) != 0 && ok) {
        ok = 0;
        saved = errno;
    }
    if (!ok || rename(tmp, path) != 0) {
        int e = ok ? errno : saved;
        unlink(tmp);
        return ds_fail(err, errlen, -1, "%s: cannot write: %s", path, strerror(e));
    }
    return 0;
}

/* ---- the plan ---- */

typedef struct {
    sm_utt u;
    int twin_wav, twin_mp4; /* an AppleDouble ._ file beside the medium */
    int macosx_wav, macosx_mp4;
} job;

typedef struct {
    job *v;
    int n, cap;
    int n_conversations;
} plan;

static const char *const age_names[] = {"child", "young", "middle-aged", "elderly"};
static const char *const timbre_names[] = {"high", "mid", "low"};

static int index_of(const char *s, const char *const *names, int n)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* What the profile says; anything it does not say (always, in test.json) the seed decides. */
static sm_person person_of(const am_profile *p, int aid, uint64_t seed, sm_rng *r)
{
    sm_person s;
    int g = p->gender ? strcmp(p->gender, "female") == 0 : -1;
    s.female = g >= 0 ? g : sm_rng_below(r, 2);
    s.age = index_of(p->age, age_names, 4);
    if (s.age < 0)
        s.age = sm_rng_below(r, 4);
    s.timbre = index_of(p->timbre, timbre_names, 3);
    if (s.timbre < 0)
        s.timbre = sm_rng_below(r, 3);
    s.look = sm_stream(seed, "avatar", aid, 0xa7a7u);
    return s;
}

static int cue_of(int label7, double p, sm_rng *r)
{
    if (sm_rng_unit(r) < p)
        return label7;
    return (label7 + 1 + sm_rng_below(r, AM_N_LABEL7 - 1)) % AM_N_LABEL7;
}

static int pick_weighted(sm_rng *r, const int *w, int n)
{
    int total = 0;
    for (int i = 0; i < n; i++)
        total += w[i];
    int x = sm_rng_below(r, total), i = 0;
    while (x >= w[i])
        x -= w[i++];
    return i;
}

/* Sizes and rates of a conversation's clips: mostly small, a few 16:9, square and larger ones. */
static void pick_video_format(sm_rng *r, int *w, int *h, int *fps)
{
    static const int sizes[][2] = {{160, 120}, {192, 144}, {224, 168}, {256, 192}, {320, 240},
                                   {320, 180}, {240, 240}, {426, 240}, {480, 360}};
    static const int size_w[] = {40, 15, 10, 8, 12, 6, 4, 2, 3};
    static const int rates[] = {12, 15, 24, 25, 30}, rate_w[] = {15, 30, 20, 20, 15};
    int s = pick_weighted(r, size_w, (int)NELEM(size_w));
    *w = sizes[s][0];
    *h = sizes[s][1];
    *fps = rates[pick_weighted(r, rate_w, (int)NELEM(rate_w))];
}

static void plan_utterance(job *j, const am_utt *au, int media, int w, int h, int fps)
{
    sm_utt *u = &j->u;
    sm_rng r = {sm_stream(u->seed, u->cid, au->index, 0x91a4u)};
    u->k = au->index;
    u->role = au->role;
    u->text = au->text;
    u->intensity_audio = u->k % 2 == 0 ? sm_rng_range(&r, 0.7, 1.0) : sm_rng_range(&r, 0.2, 0.45);
    u->intensity_video = u->k % 2 == 0 ? sm_rng_range(&r, 0.7, 1.0) : sm_rng_range(&r, 0.2, 0.45);
    static const int layout_w[] = {78, 10, 7, 5}; /* 22,050 mono, 24,000 mono, 22,050 stereo, 24,000 stereo */
    int layout = pick_weighted(&r, layout_w, 4);
    u->rate = layout % 2 ? 24000 : 22050;
    u->channels = layout >= 2 ? 2 : 1;
    u->wav_state = sm_rng_unit(&r) < 0.03 ? SM_FILE_MISSING : SM_FILE_OK;
    u->mp4_state = sm_rng_unit(&r) < 0.03 ? SM_FILE_MISSING : SM_FILE_OK;
    j->twin_wav = sm_rng_unit(&r) < 0.02;
    j->twin_mp4 = sm_rng_unit(&r) < 0.02;
    u->width = w;
    u->height = h;
    u->fps = fps;
    double secs = (0.5 + 0.012 * (double)strlen(u->text)) * sm_rng_range(&r, 0.7, 1.3);
    if (sm_rng_unit(&r) < 0.08) /* a long take */
        secs *= 2.2;
    secs = secs < 0.5 ? 0.5 : secs > 4.0 ? 4.0 : secs;
    u->n_frames = (int)(secs * fps + 0.5);
    if (sm_rng_unit(&r) < 0.03) /* shorter than the 8 frames a reader samples */
        u->n_frames = 2 + sm_rng_below(&r, 6);
    if (!(media & SYNTH_MEDIA_AUDIO))
        u->wav_state = SM_FILE_OFF;
    if (!(media & SYNTH_MEDIA_VIDEO))
        u->mp4_state = SM_FILE_OFF;
}

static int plan_corpus(plan *p, const am_corpus *c, int split, const double *prior, uint64_t seed, int media)
{
    for (size_t i = 0; i < c->n; i++) {
        const am_sample *s = &c->v[i];
        if (s->n_utt == 0)
            continue;
        sm_rng r = {sm_stream(seed, s->conversation_id, -1, 0xc0a7u)};
        int label = s->label7;
        if (label < 0) { /* test.json: a hidden label, as frequent as train's classes */
            double x = sm_rng_unit(&r);
            for (label = 0; label < AM_N_LABEL7 - 1 && x >= prior[label]; label++)
                x -= prior[label];
        }
        int audio_cue = cue_of(label, SYNTH_MEDIA_P_AUDIO, &r), video_cue = cue_of(label, SYNTH_MEDIA_P_VIDEO, &r);
        int aid[2] = {s->speaker.id, s->listener.id};
        for (int side = 0; side < 2; side++)
            if (aid[side] < 0)
                aid[side] = 1 + sm_rng_below(&r, 99);
        sm_person who[2] = {person_of(&s->speaker, aid[0], seed, &r), person_of(&s->listener, aid[1], seed, &r)};
        int w, h, fps;
        pick_video_format(&r, &w, &h, &fps);
        p->n_conversations++;
        for (int k = 0; k < s->n_utt; k++) {
            if (p->n == p->cap) {
                int cap = p->cap ? 2 * p->cap : 1024;
                job *v = realloc(p->v, (size_t)cap * sizeof *v);
                if (!v)
                    return -1;
                p->v = v;
                p->cap = cap;
            }
            job *j = &p->v[p->n++];
            memset(j, 0, sizeof *j);
            int side = s->utt[k].index % 2;
            j->u = (sm_utt){.split = split, .cid = s->conversation_id, .aid = aid[side], .label7 = label,
                            .audio_cue = audio_cue, .video_cue = video_cue, .person = who[side], .seed = seed};
            plan_utterance(j, &s->utt[k], media, w, h, fps);
        }
    }
    return 0;
}

/* Marks up to n written files of one medium as corrupt (mp4) or as __MACOSX litter (which = 2, 3). */
static int mark_some(plan *p, sm_rng *r, int n, int which)
{
    int done = 0;
    for (int tries = 0; done < n && tries < 100000 && p->n; tries++) {
        job *j = &p->v[sm_rng_below(r, p->n)];
        int *state = which % 2 ? &j->u.mp4_state : &j->u.wav_state;
        int *flag = which < 2 ? NULL : which % 2 ? &j->macosx_mp4 : &j->macosx_wav;
        if (*state != SM_FILE_OK || (flag && *flag))
            continue;
        if (flag)
            *flag = 1;
        else
            *state = SM_FILE_CORRUPT;
        done++;
    }
    return done;
}

/* ---- the work ---- */

typedef struct {
    const char *dir;
    plan *p;
    pthread_mutex_t lock;
    int next_video, failed, rc;
    char *err;
    size_t errlen;
} pool;

static void media_path(char *buf, size_t len, const char *dir, const char *sub, const sm_utt *u, const char *ext)
{
    snprintf(buf, len, "%s/%s/dia%sutt%d_%d.%s", dir, sub, u->cid, u->k, u->aid, ext);
}

static int write_medium(pool *pl, const sm_utt *u, int video, char *err, size_t errlen)
{
    char path[4096], tmp[4200];
    int state = video ? u->mp4_state : u->wav_state;
    if (state == SM_FILE_OFF)
        return 0;
    media_path(path, sizeof path, pl->dir, video ? "video_v5_0" : "audio_v5_0", u, video ? "mp4" : "wav");
    if (state == SM_FILE_MISSING) { /* an earlier run's file would make this one present */
        if (unlink(path) != 0 && errno != ENOENT)
            return ds_fail(err, errlen, -1, "%s: cannot remove: %s", path, strerror(errno));
        return 0;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = video ? sm_video_write(u, tmp, err, errlen) : sm_speech_write(u, tmp, err, errlen);
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    long keep = -1;
    if (state == SM_FILE_CORRUPT) {
        struct stat st;
        if (stat(tmp, &st) != 0)
            return ds_fail(err, errlen, -1, "%s: cannot stat: %s", tmp, strerror(errno));
        /* mp4: 40% of the bytes loses the index at the end; wav: 30 bytes end inside the fmt chunk. */
        keep = video ? (long)(st.st_size * 2 / 5) : 30;
    }
    return sm_file_commit(tmp, path, keep, err, errlen);
}

static void pool_fail(pool *pl, int code, const char *msg)
{
    pthread_mutex_lock(&pl->lock);
    if (!pl->failed) {
        pl->failed = 1;
        pl->rc = code;
        snprintf(pl->err, pl->errlen, "%s", msg);
    }
    pthread_mutex_unlock(&pl->lock);
}

static int pool_stopped(pool *pl)
{
    pthread_mutex_lock(&pl->lock);
    int f = pl->failed;
    pthread_mutex_unlock(&pl->lock);
    return f;
}

/* All speech in plan order (espeak-ng's state depends on it). */
static void speak_all(pool *pl)
{
    char err[1024];
    if (sm_speech_begin(err, sizeof err) != 0) {
        pool_fail(pl, SYNTH_MEDIA_ERR_SPEECH, err);
        return;
    }
    for (int i = 0; i < pl->p->n && !pool_stopped(pl); i++)
        if (write_medium(pl, &pl->p->v[i].u, 0, err, sizeof err) != 0)
            pool_fail(pl, SYNTH_MEDIA_ERR_SPEECH, err);
    sm_speech_end();
}

static void *encode_videos(void *arg)
{
    pool *pl = arg;
    char err[1024];
    for (;;) {
        pthread_mutex_lock(&pl->lock);
        int i = pl->failed ? pl->p->n : pl->next_video++;
        pthread_mutex_unlock(&pl->lock);
        if (i >= pl->p->n)
            return NULL;
        if (write_medium(pl, &pl->p->v[i].u, 1, err, sizeof err) != 0)
            pool_fail(pl, SYNTH_MEDIA_ERR_VIDEO, err);
    }
}

static int run_pool(pool *pl, int threads, int media)
{
    pthread_t tid[64];
    int started = 0;
    for (int t = 1; t < threads && t < (int)NELEM(tid) && (media & SYNTH_MEDIA_VIDEO); t++) {
        if (pthread_create(&tid[started], NULL, encode_videos, pl) != 0)
            break; /* fewer threads only costs time */
        started++;
    }
    if (media & SYNTH_MEDIA_AUDIO)
        speak_all(pl);
    if (media & SYNTH_MEDIA_VIDEO)
        encode_videos(pl);
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    return pl->failed ? pl->rc : 0;
}

/* ---- the litter of a Mac zip, and the sidecar ---- */

/* An AppleDouble header (magic, version, "Mac OS X", two entries) padded to the 4,096 bytes Finder writes. */
static int write_appledouble(const char *path, char *err, size_t errlen)
{
    static const unsigned char head[] = {0x00, 0x05, 0x16, 0x07, 0x00, 0x02, 0x00, 0x00, 'M', 'a', 'c', ' ',
                                         'O', 'S', ' ', 'X', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ',
                                         0x00, 0x02, 0x00, 0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x32, 0x00, 0x00,
                                         0x0e, 0xb0, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x0e, 0xe2, 0x00, 0x00,
                                         0x01, 0x1e};
    unsigned char buf[4096] = {0};
    memcpy(buf, head, sizeof head);
    memcpy(buf + 0x32, "ATTR", 4);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return ds_fail(err, errlen, -1, "%s: cannot create: %s", tmp, strerror(errno));
    size_t w = fwrite(buf, 1, sizeof buf, f);
    if (fclose(f) != 0 || w != sizeof buf) {
        unlink(tmp);
        return ds_fail(err, errlen, -1, "%s: cannot write", tmp);
    }
    return sm_file_commit(tmp, path, -1, err, errlen);
}

static int write_litter(const char *dir, const plan *p, synth_media_summary *sum, char *err, size_t errlen)
{
    char path[4200];
    static const char *const subs[2] = {"audio_v5_0", "video_v5_0"}, *const exts[2] = {"wav", "mp4"};
    for (int i = 0; i < p->n; i++) {
        const job *j = &p->v[i];
        for (int m = 0; m < 2; m++) {
            int state = m ? j->u.mp4_state : j->u.wav_state;
            if (state == SM_FILE_OFF || state == SM_FILE_MISSING)
                continue;
            int twin = m ? j->twin_mp4 : j->twin_wav, mac = m ? j->macosx_mp4 : j->macosx_wav;
            const char *prefix[2] = {twin ? "" : NULL, mac ? "__MACOSX/" : NULL};
            for (int w = 0; w < 2; w++) {
                if (!prefix[w])
                    continue;
                snprintf(path, sizeof path, "%s/%s%s/._dia%sutt%d_%d.%s", dir, prefix[w], subs[m], j->u.cid, j->u.k,
                         j->u.aid, exts[m]);
                if (write_appledouble(path, err, errlen) != 0)
                    return SYNTH_MEDIA_ERR_IO;
                *(w ? &sum->n_macosx : &sum->n_appledouble) += 1;
            }
        }
    }
    return 0;
}

static const char *state_name(int s)
{
    static const char *const names[] = {"-", "ok", "missing", "corrupt"};
    return names[s];
}

static int write_cues(const char *dir, const plan *p, char *err, size_t errlen)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, SYNTH_MEDIA_CUES_FILE);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return ds_fail(err, errlen, SYNTH_MEDIA_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    fprintf(f, "split\tcid\tk\taid\trole\tlabel7\taudio_cue\tvideo_cue\tintensity_audio\tintensity_video\t"
               "wav\trate\tchannels\tmp4\twidth\theight\tfps\tframes\n");
    for (int i = 0; i < p->n; i++) {
        const sm_utt *u = &p->v[i].u;
        fprintf(f, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%.3f\t%.3f\t%s\t%d\t%d\t%s\t%d\t%d\t%d\t%d\n",
                u->split ? "test" : "train", u->cid, u->k, u->aid, u->role, u->label7, u->audio_cue, u->video_cue,
                u->intensity_audio, u->intensity_video, state_name(u->wav_state), u->rate, u->channels,
                state_name(u->mp4_state), u->width, u->height, u->fps, u->n_frames);
    }
    if (fclose(f) != 0) {
        unlink(tmp);
        return ds_fail(err, errlen, SYNTH_MEDIA_ERR_IO, "%s: cannot write", tmp);
    }
    return sm_file_commit(tmp, path, -1, err, errlen) ? SYNTH_MEDIA_ERR_IO : 0;
}

/* ---- the entry ---- */

static int make_dir(const char *dir, const char *sub, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return ds_fail(err, errlen, SYNTH_MEDIA_ERR_IO, "%s: cannot create the directory: %s", path, strerror(errno));
    return 0;
}

static int load_both(const char *dir, am_corpus c[2], char *err, size_t errlen)
{
    static const char *const names[2] = {"train.json", "test.json"};
    for (int i = 0; i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        int rc = am_corpus_load(path, AM_ON_ERROR_SKIP, &c[i], err, errlen);
        if (rc != AM_OK)
            return rc == AM_ERR_NOMEM ? SYNTH_MEDIA_ERR_NOMEM : SYNTH_MEDIA_ERR_INPUT;
    }
    return 0;
}

static void count_files(const plan *p, synth_media_summary *sum)
{
    for (int i = 0; i < p->n; i++) {
        const sm_utt *u = &p->v[i].u;
        sum->n_wav += u->wav_state == SM_FILE_OK || u->wav_state == SM_FILE_CORRUPT;
        sum->n_mp4 += u->mp4_state == SM_FILE_OK || u->mp4_state == SM_FILE_CORRUPT;
        sum->n_missing_wav += u->wav_state == SM_FILE_MISSING;
        sum->n_missing_mp4 += u->mp4_state == SM_FILE_MISSING;
        sum->n_corrupt_wav += u->wav_state == SM_FILE_CORRUPT;
        sum->n_corrupt_mp4 += u->mp4_state == SM_FILE_CORRUPT;
    }
}

int synth_media_write(const char *out_dir, uint64_t seed, const synth_media_opts *opts, synth_media_summary *sum,
                      char *err, size_t errlen)
{
    static const synth_media_opts defaults = {SYNTH_MEDIA_ALL, 2, 0};
    char dummy[1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    const synth_media_opts *o = opts ? opts : &defaults;
    synth_media_summary local;
    sum = sum ? sum : &local;
    memset(sum, 0, sizeof *sum);
    if (o->media < 0 || o->media > SYNTH_MEDIA_ALL || o->threads < 1 || o->threads > 64)
        return ds_fail(err, errlen, SYNTH_MEDIA_ERR_ARG, "synth_media: media %d must be 0..3 and threads %d 1..64",
                       o->media, o->threads);
    if (!o->media)
        return SYNTH_MEDIA_OK;
    am_corpus c[2] = {{0}, {0}};
    plan p = {0};
    int rc = load_both(out_dir, c, err, errlen);
    if (rc == 0) {
        double prior[AM_N_LABEL7] = {0};
        size_t labeled = 0;
        for (size_t i = 0; i < c[0].n; i++)
            if (c[0].v[i].label7 >= 0) {
                prior[c[0].v[i].label7] += 1;
                labeled++;
            }
        for (int l = 0; l < AM_N_LABEL7; l++)
            prior[l] = labeled ? prior[l] / (double)labeled : 1.0 / AM_N_LABEL7;
        if (plan_corpus(&p, &c[0], 0, prior, seed, o->media) || plan_corpus(&p, &c[1], 1, prior, seed, o->media))
            rc = ds_fail(err, errlen, SYNTH_MEDIA_ERR_NOMEM, "synth_media: out of memory planning %s", out_dir);
    }
    if (rc == 0) {
        sm_rng r = {sm_stream(seed, "", 0, 0x3e55u)};
        if (o->media & SYNTH_MEDIA_VIDEO) {
            mark_some(&p, &r, 1 + (int)c[0].n / 400, 1);
            mark_some(&p, &r, 3, 3);
        }
        if (o->media & SYNTH_MEDIA_AUDIO) {
            mark_some(&p, &r, 1, 0);
            mark_some(&p, &r, 3, 2);
        }
        static const char *const dirs[] = {"audio_v5_0", "video_v5_0", "__MACOSX", "__MACOSX/audio_v5_0",
                                           "__MACOSX/video_v5_0"};
        for (size_t d = 0; d < NELEM(dirs) && rc == 0; d++)
            rc = make_dir(out_dir, dirs[d], err, errlen);
    }
    if (rc == 0) {
        pool pl = {.dir = out_dir, .p = &p, .err = err, .errlen = errlen};
        pthread_mutex_init(&pl.lock, NULL);
        rc = run_pool(&pl, o->threads, o->media);
        pthread_mutex_destroy(&pl.lock);
    }
    if (rc == 0)
        rc = write_litter(out_dir, &p, sum, err, errlen);
    if (rc == 0 && o->write_cues)
        rc = write_cues(out_dir, &p, err, errlen);
    if (rc == 0) {
        sum->n_conversations = p.n_conversations;
        sum->n_utterances = p.n;
        count_files(&p, sum);
        static const char *const synced[] = {"audio_v5_0", "video_v5_0", "__MACOSX/audio_v5_0",
                                             "__MACOSX/video_v5_0", "__MACOSX", "."};
        for (size_t d = 0; d < NELEM(synced); d++) { /* the renames are durable once the folders are synced */
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", out_dir, synced[d]);
            ds_fsync_dir(path);
        }
    }
    free(p.v);
    am_corpus_free(&c[0]);
    am_corpus_free(&c[1]);
    return rc;
}
