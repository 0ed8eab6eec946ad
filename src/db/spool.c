/* db/spool.c — the spool file's format, appends, reads and recovery; see spool.h */
#include "db/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "base/fs.h"
#include "base/log.h"

/* ---- framing --------------------------------------------------------------------------- */

#define SPOOL_MAGIC   0x53495354u /* "TSIS" little-endian */
#define SPOOL_VERSION 1
#define HDR_SIZE      16
#define MAX_PAYLOAD   4096
#define READ_CHUNK    (4u << 20)

static size_t payload_size(int type)
{
    switch (type) {
    case TSI_SPOOL_ROW:
        return sizeof(tsi_rt_row);
    case TSI_SPOOL_DQ:
        return sizeof(tsi_dq_row);
    }
    return 0;
}

/* An intersection record is variable-length: this fixed part, then its metadata JSON
 * (without the NUL). Records of the fixed-size layout that had a NUL-padded
 * char[1024] metadata after the same fixed part are read the same way. */
typedef struct isect_wire {
    int64_t id;
    char name[128];
    double latitude, longitude;
    int32_t lane_count, revision;
} isect_wire;

/* a realtime row record written before the provenance fields existed (migration 060):
 * the struct's prefix */
#define ROW_V1_SIZE offsetof(tsi_rt_row, constants_id)

static bool payload_ok(int type, uint32_t len)
{
    if (type == TSI_SPOOL_ROW && len == ROW_V1_SIZE)
        return true;
    if (type == TSI_SPOOL_ISECT)
        return len >= sizeof(isect_wire) && len <= sizeof(isect_wire) + TSI_ISECT_METADATA_MAX;
    return len <= MAX_PAYLOAD && payload_size(type) == len;
}

static uint32_t rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint32_t frame_crc(const unsigned char *hdr, const unsigned char *payload, uint32_t len)
{
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, hdr + 4, 8); /* type, version, reserved, len */
    c = crc32(c, payload, len);
    return (uint32_t)c;
}

void tsi_spool_frame(tsi_buf *b, int type, const void *payload, uint32_t len)
{
    unsigned char hdr[HDR_SIZE];
    uint32_t magic = SPOOL_MAGIC;
    memcpy(hdr, &magic, 4);
    hdr[4] = (unsigned char)type;
    hdr[5] = SPOOL_VERSION;
    hdr[6] = hdr[7] = 0;
    memcpy(hdr + 8, &len, 4);
    uint32_t crc = frame_crc(hdr, payload, len);
    memcpy(hdr + 12, &crc, 4);
    tsi_buf_append(b, hdr, HDR_SIZE);
    tsi_buf_append(b, payload, len);
}

/* 1: a valid frame of *flen bytes at p; 0: incomplete (needs more bytes); -1: invalid */
static int parse_frame(const unsigned char *p, size_t avail, size_t *flen)
{
    if (avail < HDR_SIZE)
        return avail >= 4 && rd32(p) != SPOOL_MAGIC ? -1 : 0;
    if (rd32(p) != SPOOL_MAGIC || p[5] != SPOOL_VERSION || p[6] || p[7])
        return -1;
    uint32_t len = rd32(p + 8);
    if (len == 0 || !payload_ok(p[4], len))
        return -1;
    if (avail < HDR_SIZE + (size_t)len)
        return 0;
    if (frame_crc(p, p + HDR_SIZE, len) != rd32(p + 12))
        return -1;
    *flen = HDR_SIZE + len;
    return 1;
}

int tsi_spool_scan(int fd, const char *path, off_t *size_out, long long *records_out,
                   long long *corrupt_out, tsi_error *err)
{
    struct stat sb;
    if (fstat(fd, &sb) < 0)
        return tsi_error_set(err, TSI_E_IO, "cannot stat spool", "%s: %s", path, strerror(errno));
    off_t size = sb.st_size, off = 0, valid_end = 0;
    long long records = 0, corrupt = 0;
    unsigned char *buf = malloc(READ_CHUNK);
    if (!buf)
        return tsi_error_set(err, TSI_E_NOMEM, "out of memory", NULL);
    bool in_garbage = false;
    while (off < size) {
        size_t want = (size_t)(size - off) < READ_CHUNK ? (size_t)(size - off) : READ_CHUNK;
        ssize_t got = pread(fd, buf, want, off);
        if (got <= 0) {
            free(buf);
            return tsi_error_set(err, TSI_E_IO, "cannot read spool", "%s: %s", path,
                                 got < 0 ? strerror(errno) : "short read");
        }
        size_t i = 0;
        while (i < (size_t)got) {
            size_t fl = 0;
            int r = parse_frame(buf + i, (size_t)got - i, &fl);
            if (r == 1) {
                records++;
                i += fl;
                valid_end = off + (off_t)i;
                in_garbage = false;
            } else if (r == 0 && off + (off_t)got < size) {
                break; /* the frame continues in the next chunk */
            } else {
                if (!in_garbage)
                    corrupt++;
                in_garbage = true;
                i++; /* resynchronise on the next valid frame */
            }
        }
        if (i == 0) { /* cannot happen: a frame is far smaller than a chunk */
            break;
        }
        off += (off_t)i;
    }
    free(buf);
    if (valid_end < size) {
        tsi_warn("ingest", "spool ends with a torn or corrupt record: cut path=%s bytes=%lld", path,
                 (long long)(size - valid_end));
        if (ftruncate(fd, valid_end) < 0 || fsync(fd) < 0)
            return tsi_error_set(err, TSI_E_IO, "cannot cut the spool's torn tail", "%s: %s", path,
                                 strerror(errno));
        size = valid_end;
    }
    *size_out = size;
    *records_out = records;
    *corrupt_out = corrupt;
    if (records > 0)
        tsi_info("ingest", "spool holds records to replay path=%s records=%lld corrupt=%lld", path,
                 records, corrupt);
    return 0;
}

/* ---- the file ------------------------------------------------------------------------- */

int tsi_spool_open(const char *path, int *fd, tsi_error *err)
{
    *fd = -1;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    int rc = tsi_mkdirs(dir, err);
    if (rc < 0)
        return rc;
    int f = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (f < 0)
        return tsi_error_set(err, TSI_E_IO, "cannot open spool", "%s: %s", path, strerror(errno));
    if (flock(f, LOCK_EX | LOCK_NB) < 0) {
        rc = tsi_error_set(err, TSI_E_EXISTS, "the spool is in use by another process", "%s: %s",
                           path, strerror(errno));
        close(f);
        return rc;
    }
    tsi_fsync_dir(dir, NULL);
    *fd = f;
    return 0;
}

void tsi_spool_isect_payload(tsi_buf *b, const tsi_isect_row *row)
{
    isect_wire x; /* zeroed padding: the checksum covers every byte */
    memset(&x, 0, sizeof x);
    x.id = row->id;
    snprintf(x.name, sizeof x.name, "%s", row->name);
    x.latitude = row->latitude;
    x.longitude = row->longitude;
    x.lane_count = row->lane_count;
    x.revision = row->revision;
    const char *md = row->metadata && row->metadata[0] ? row->metadata : "{}";
    tsi_buf_append(b, &x, sizeof x);
    tsi_buf_append(b, md, strlen(md));
}

int tsi_spool_write(int fd, const char *path, const void *data, size_t len, off_t end,
                    tsi_error *err)
{
    size_t done = 0;
    int rc = 0;
    while (done < len) {
        ssize_t w = write(fd, (const char *)data + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = tsi_error_set(err, TSI_E_IO, "cannot append to the spool", "%s: %s", path,
                               w < 0 ? strerror(errno) : "short write");
            break;
        }
        done += (size_t)w;
    }
    if (rc == 0 && fdatasync(fd) < 0)
        rc =
            tsi_error_set(err, TSI_E_IO, "cannot fsync the spool", "%s: %s", path, strerror(errno));
    if (rc < 0) {
        /* cut what was half-written so the next append starts on a frame boundary */
        if (ftruncate(fd, end) < 0)
            tsi_err("ingest", "cannot cut a failed append path=%s err=%s", path, strerror(errno));
    }
    return rc;
}

int tsi_spool_empty(int fd, const char *path, tsi_error *err)
{
    if (ftruncate(fd, 0) == 0 && fdatasync(fd) == 0)
        return 0;
    return tsi_error_set(err, TSI_E_IO, "cannot empty the spool", "%s: %s", path, strerror(errno));
}

/* ---- reading back ------------------------------------------------------------------- */

/* an intersection record into x; x->metadata is malloc'ed (tsi_spool_recs_free), NULL = "{}" */
static void isect_read(tsi_isect_row *x, const unsigned char *p, size_t len)
{
    isect_wire w;
    memcpy(&w, p, sizeof w);
    x->id = w.id;
    memcpy(x->name, w.name, sizeof x->name);
    x->name[sizeof x->name - 1] = '\0';
    x->latitude = w.latitude;
    x->longitude = w.longitude;
    x->lane_count = w.lane_count;
    x->revision = w.revision;
    x->metadata = strndup((const char *)p + sizeof w, len - sizeof w);
    if (!x->metadata)
        tsi_err("ingest", "out of memory reading intersection metadata id=%lld bytes=%zu",
                (long long)w.id, len - sizeof w);
}

void tsi_spool_recs_free(tsi_spool_rec *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].type == TSI_SPOOL_ISECT) {
            free((char *)v[i].u.isect.metadata);
            v[i].u.isect.metadata = NULL;
        }
}

size_t tsi_spool_read(int fd, off_t off, off_t end, tsi_spool_rec *v, size_t max, off_t *next,
                      long long *corrupt)
{
    size_t n = 0;
    unsigned char *buf = malloc(READ_CHUNK);
    if (!buf) {
        *next = off;
        return 0;
    }
    while (off < end && n < max) {
        size_t want = (size_t)(end - off) < READ_CHUNK ? (size_t)(end - off) : READ_CHUNK;
        ssize_t got = pread(fd, buf, want, off);
        if (got <= 0)
            break;
        size_t i = 0;
        bool garbage = false;
        while (i < (size_t)got && n < max) {
            size_t fl = 0;
            int r = parse_frame(buf + i, (size_t)got - i, &fl);
            if (r == 0)
                break;
            if (r < 0) {
                if (!garbage)
                    (*corrupt)++;
                garbage = true;
                i++;
                continue;
            }
            garbage = false;
            int type = buf[i + 4];
            if (n > 0 && type != v[0].type)
                goto out; /* one type per transaction */
            v[n].type = type;
            v[n].off = off + (off_t)i;
            if (type == TSI_SPOOL_ISECT)
                isect_read(&v[n].u.isect, buf + i + HDR_SIZE, fl - HDR_SIZE);
            else {
                memset(&v[n].u, 0, sizeof v[n].u); /* an older, shorter row: provenance 0 */
                memcpy(&v[n].u, buf + i + HDR_SIZE, fl - HDR_SIZE);
            }
            n++;
            i += fl;
        }
        if (i == 0)
            break;
        off += (off_t)i;
        continue;
    out:
        off += (off_t)i;
        break;
    }
    free(buf);
    *next = off;
    return n;
}
