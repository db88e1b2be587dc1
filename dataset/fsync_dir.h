/* fsync_dir.h: making renames and unlinks durable. A rename is on disk only once the folder holding the
 * name is synced too; every writer of dataset/ that publishes by rename calls one of these afterwards. */
#ifndef EMPD_DATASET_FSYNC_DIR_H
#define EMPD_DATASET_FSYNC_DIR_H

/* fsync the folder dir. 0, or -1 with errno set. */
int ds_fsync_dir(const char *dir);

/* fsync the folder that holds path ("." for a bare name). 0, or -1 with errno set. */
int ds_fsync_parent(const char *path);

#endif
