/* db/cluster.c — see cluster.h */
#include "db/cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/options.h"
#include "base/proc.h"
#include "db/conn.h"
#include "db/result.h"

/* the roles that log in over TCP with a client certificate (pg_hba.conf names exactly these;
 * tsi_replication only for replication connections) */
static const char *const login_roles[] = {"tsi_owner", "tsi_writer", "tsi_jobs", "tsi_reader",
                                          "tsi_replication"};
#define HBA_ROLES "tsi_owner,tsi_writer,tsi_jobs,tsi_reader"

static char pg_bin[PATH_MAX] = "/usr/lib/postgresql/15/bin";
/* --pg-listen and --pg-hostname travel in the environment, as TSI_PG_PORT does: every
 * command that (re)starts the cluster (db start, backup setup, restore) writes the same
 * configuration. Each is checked where it is used: both go into configuration files. */
#define PG_OPT_MAX 256
static const char *pg_listen(void)
{
    const char *l = getenv("TSI_PG_LISTEN");
    return l && *l ? l : "127.0.0.1";
}
static const char *pg_hostname(void)
{
    const char *h = getenv("TSI_PG_HOSTNAME");
    return h ? h : "";
}

static bool am_root(void)
{
    return geteuid() == 0;
}

static const char *server_user(void)
{
    return am_root() ? "postgres" : NULL;
}

const char *tsi_cluster_server_user(void)
{
    return server_user();
}

void tsi_cluster_set_pg_bin(const char *dir)
{
    if (dir && *dir)
        snprintf(pg_bin, sizeof pg_bin, "%s", dir);
}

const char *tsi_cluster_pg_bin(void)
{
    return pg_bin;
}

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int chown_to_server(const char *path)
{
    if (!am_root())
        return 0;
    uid_t uid;
    gid_t gid;
    if (tsi_proc_user("postgres", &uid, &gid) < 0)
        return -1;
    return chown(path, uid, gid);
}

int tsi_cluster_run(char *const argv[], bool as_server, tsi_error *err)
{
    char out[8192];
    int rc = tsi_proc_run(argv, as_server ? server_user() : NULL, out, sizeof out, err);
    if (rc < 0)
        return rc;
    if (rc != 0) {
        size_t n = strlen(out);
        while (n && out[n - 1] == '\n')
            out[--n] = '\0';
        const char *tail = n > 400 ? out + n - 400 : out;
        return tsi_error_set(err, TSI_E_PROC, "command failed", "%s %s exited %d: %s", argv[0],
                             argv[1] ? argv[1] : "", rc, tail);
    }
    return 0;
}

static int write_file(const char *path, const char *text, mode_t mode, tsi_error *err)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return tsi_error_set(err, TSI_E_IO, "cannot write file", "%s: %s", tmp, strerror(errno));
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    if (w != (ssize_t)n || fsync(fd) < 0) {
        close(fd);
        unlink(tmp);
        return tsi_error_set(err, TSI_E_IO, "cannot write file", "%s: %s", tmp, strerror(errno));
    }
    close(fd);
    if (rename(tmp, path) < 0)
        return tsi_error_set(err, TSI_E_IO, "cannot rename file", "%s: %s", path, strerror(errno));
    chown_to_server(path);
    return 0;
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* ---- certificates ------------------------------------------------------------------ */

static int openssl_key_csr(const char *dir, const char *name, const char *cn, tsi_error *err)
{
    char key[PATH_MAX], csr[PATH_MAX], subj[256];
    snprintf(key, sizeof key, "%s/%s.key", dir, name);
    snprintf(csr, sizeof csr, "%s/%s.csr", dir, name);
    snprintf(subj, sizeof subj, "/CN=%s", cn);
    char *argv[] = {"openssl", "req", "-new",     "-nodes",
                    "-newkey", "ec",  "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-keyout", key,   "-out",     csr,
                    "-subj",   subj,  NULL};
    int rc = tsi_cluster_run(argv, false, err);
    if (rc == 0)
        chmod(key, 0600);
    return rc;
}

/* signs dir/name.csr into dir/name.crt with the CA of cadir (ca.key, ca.srl) */
static int openssl_sign(const char *dir, const char *cadir, const char *name, const char *extfile,
                        tsi_error *err)
{
    char csr[PATH_MAX], crt[PATH_MAX], ca[PATH_MAX], cakey[PATH_MAX], serial[PATH_MAX];
    snprintf(csr, sizeof csr, "%s/%s.csr", dir, name);
    snprintf(crt, sizeof crt, "%s/%s.crt", dir, name);
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    snprintf(cakey, sizeof cakey, "%s/ca.key", cadir);
    snprintf(serial, sizeof serial, "%s/ca.srl", cadir);
    char *argv[] = {"openssl",
                    "x509",
                    "-req",
                    "-in",
                    csr,
                    "-CA",
                    ca,
                    "-CAkey",
                    cakey,
                    "-CAserial",
                    serial,
                    "-CAcreateserial",
                    "-days",
                    "3650",
                    "-sha256",
                    "-out",
                    crt,
                    extfile ? "-extfile" : NULL,
                    (char *)extfile,
                    NULL};
    int rc = tsi_cluster_run(argv, false, err);
    unlink(csr);
    return rc;
}

/* Before issue 31 the CA key and serial lay in certs/ beside the certificates every
 * process reads: move them into the CA directory. */
static int move_ca_key(const char *dir, const char *cadir, tsi_error *err)
{
    static const char *const files[] = {"ca.key", "ca.srl"};
    for (int i = 0; i < 2; i++) {
        char from[PATH_MAX], to[PATH_MAX];
        snprintf(from, sizeof from, "%s/%s", dir, files[i]);
        snprintf(to, sizeof to, "%s/%s", cadir, files[i]);
        if (!exists(from))
            continue;
        if (exists(to)) {
            unlink(from);
            continue;
        }
        if (rename(from, to) < 0)
            return tsi_error_set(err, TSI_E_IO, "cannot move the CA key out of the certificates",
                                 "%s -> %s: %s", from, to, strerror(errno));
        tsi_info("db", "moved %s to %s (only `tsi db` needs it)", from, to);
    }
    return 0;
}

/* The CA (key in cadir, certificate in dir), the server's certificate and one client
 * certificate per login role in dir. Makes what is missing: a new CA only when there is
 * no CA certificate yet; a missing role certificate with the existing CA key. */
static int make_certs(const char *dir, const char *const *extra, tsi_error *err)
{
    char path[PATH_MAX], cadir[PATH_MAX], cakey[PATH_MAX], ext[PATH_MAX];
    int rc;
    tsi_db_ca_dir(cadir, sizeof cadir);
    if (mkdir_p(dir, 0700) < 0 || mkdir_p(cadir, 0700) < 0)
        return tsi_error_set(err, TSI_E_IO, "cannot create the certificate directories",
                             "%s, %s: %s", dir, cadir, strerror(errno));
    chmod(cadir, 0700);
    if ((rc = move_ca_key(dir, cadir, err)) < 0)
        return rc;
    snprintf(path, sizeof path, "%s/ca.crt", dir);
    snprintf(cakey, sizeof cakey, "%s/ca.key", cadir);
    if (!exists(path)) {
        tsi_info("db", "creating a CA in %s (key) and certificates in %s", cadir, dir);
        char *ca[] = {"openssl",
                      "req",
                      "-new",
                      "-x509",
                      "-nodes",
                      "-days",
                      "3650",
                      "-newkey",
                      "ec",
                      "-pkeyopt",
                      "ec_paramgen_curve:prime256v1",
                      "-keyout",
                      cakey,
                      "-out",
                      path,
                      "-subj",
                      "/CN=tsi embedded CA",
                      "-addext",
                      "basicConstraints=critical,CA:TRUE",
                      "-addext",
                      "keyUsage=critical,keyCertSign,cRLSign",
                      NULL};
        if ((rc = tsi_cluster_run(ca, false, err)) < 0)
            return rc;
        chmod(cakey, 0600);
    }
    bool need_key = false;
    snprintf(path, sizeof path, "%s/server.crt", dir);
    need_key |= !exists(path);
    for (size_t i = 0; i < sizeof login_roles / sizeof login_roles[0]; i++) {
        snprintf(path, sizeof path, "%s/%s.crt", dir, login_roles[i]);
        need_key |= !exists(path);
    }
    for (const char *const *x = extra; x && *x; x++) {
        snprintf(path, sizeof path, "%s/%s.crt", dir, *x);
        need_key |= !exists(path);
    }
    if (need_key && !exists(cakey))
        return tsi_error_set(err, TSI_E_NOTFOUND, "a certificate is missing and the CA key is gone",
                             "%s: move %s aside and start again to make a new CA (see "
                             "docs/operations.md, Rotate credentials)",
                             cakey, dir);
    snprintf(path, sizeof path, "%s/server.crt", dir);
    if (!exists(path)) {
        snprintf(ext, sizeof ext, "%s/server.ext", dir);
        if (!tsi_cluster_hostname_ok(pg_hostname()))
            return tsi_error_set(err, TSI_E_INVALID, "TSI_PG_HOSTNAME is not a DNS name", "'%s'",
                                 pg_hostname());
        char san[512];
        snprintf(san, sizeof san,
                 "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1%s%s\n"
                 "extendedKeyUsage=serverAuth\n",
                 *pg_hostname() ? ",DNS:" : "", pg_hostname());
        if ((rc = write_file(ext, san, 0644, err)) < 0)
            return rc;
        if ((rc = openssl_key_csr(dir, "server", "localhost", err)) < 0 ||
            (rc = openssl_sign(dir, cadir, "server", ext, err)) < 0)
            return rc;
        unlink(ext);
    }
    for (size_t i = 0; i < sizeof login_roles / sizeof login_roles[0]; i++) {
        snprintf(path, sizeof path, "%s/%s.crt", dir, login_roles[i]);
        if (exists(path))
            continue;
        if ((rc = openssl_key_csr(dir, login_roles[i], login_roles[i], err)) < 0 ||
            (rc = openssl_sign(dir, cadir, login_roles[i], NULL, err)) < 0)
            return rc;
    }
    for (const char *const *x = extra; x && *x; x++) {
        snprintf(path, sizeof path, "%s/%s.crt", dir, *x);
        if (exists(path))
            continue;
        if ((rc = openssl_key_csr(dir, *x, *x, err)) < 0 ||
            (rc = openssl_sign(dir, cadir, *x, NULL, err)) < 0)
            return rc;
    }
    return 0;
}

int tsi_cluster_make_certs(const char *const *extra_roles, tsi_error *err)
{
    char certs[PATH_MAX];
    tsi_db_certs_dir(certs, sizeof certs);
    return make_certs(certs, extra_roles, err);
}

/* ---- data directory ------------------------------------------------------------------ */

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* Creates the data directory (or its link) so the server user owns and reaches it. */
static int prepare_data_dir(char *real, size_t len, tsi_error *err)
{
    char link[PATH_MAX];
    tsi_cluster_data_link(link, sizeof link);
    return tsi_cluster_prepare_dir(link, "pg", real, len, err);
}

int tsi_cluster_prepare_dir(const char *link, const char *tag, char *real, size_t len,
                            tsi_error *err)
{
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", link);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent)
        *slash = '\0';
    if (mkdir_p(parent, 0755) < 0)
        return tsi_error_set(err, TSI_E_IO, "cannot create the directory", "%s: %s", parent,
                             strerror(errno));
    struct stat st;
    if (lstat(link, &st) == 0) {
        tsi_cluster_resolve(link, real, len);
        if (!exists(real))
            return tsi_error_set(err, TSI_E_IO, "the data directory link points nowhere",
                                 "%s -> %s (remove the link to start afresh)", link, real);
        return 0;
    }
    if (am_root() && !tsi_proc_user_can_reach("postgres", parent)) {
        /* the pg directory keeps the name it always had: a hash of TSI_HOME */
        snprintf(real, len, "/var/lib/tsi/%s-%016llx", tag,
                 (unsigned long long)fnv1a(strcmp(tag, "pg") == 0 ? tsi_home() : link));
        tsi_info("db", "the postgres user cannot reach %s: data directory is %s, linked from %s",
                 parent, real, link);
        if (mkdir_p("/var/lib/tsi", 0755) < 0 || mkdir_p(real, 0700) < 0)
            return tsi_error_set(err, TSI_E_IO, "cannot create the data directory", "%s: %s", real,
                                 strerror(errno));
        if (symlink(real, link) < 0)
            return tsi_error_set(err, TSI_E_IO, "cannot link the data directory", "%s: %s", link,
                                 strerror(errno));
    } else {
        snprintf(real, len, "%s", link);
        if (mkdir_p(real, 0700) < 0)
            return tsi_error_set(err, TSI_E_IO, "cannot create the data directory", "%s: %s", real,
                                 strerror(errno));
    }
    chmod(real, 0700);
    if (chown_to_server(real) < 0)
        return tsi_error_set(err, TSI_E_IO, "cannot give the data directory to postgres", "%s: %s",
                             real, strerror(errno));
    return 0;
}

int tsi_cluster_copy_file(const char *from, const char *to, mode_t mode, tsi_error *err)
{
    FILE *f = fopen(from, "rb");
    if (!f)
        return tsi_error_set(err, TSI_E_IO, "cannot read file", "%s: %s", from, strerror(errno));
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return write_file(to, buf, mode, err);
}

/* --pg-listen beyond loopback (a container whose clients connect by name): the four tsi
 * roles, and only they, may log in over TLS with their certificate from any address */
static int append_remote_hba(const char *path, tsi_error *err)
{
    if (strcmp(pg_listen(), "127.0.0.1") == 0)
        return 0;
    FILE *f = fopen(path, "a");
    if (!f)
        return tsi_error_set(err, TSI_E_IO, "cannot write", "%s: %s", path, strerror(errno));
    fprintf(f, "# --pg-listen %s: the tsi roles from other hosts (TLS, certificate)\n",
            pg_listen());
    fprintf(f, "hostssl all          " HBA_ROLES "  0.0.0.0/0  cert\n"
               "hostssl all          " HBA_ROLES "  ::/0  cert\n");
    return fclose(f) == 0 ? 0 : tsi_error_set(err, TSI_E_IO, "cannot write", "%s", path);
}

/* The settings every tsi server has, embedded or a node of the HA formation: the
 * socket, the preloaded extensions, pg_cron with background workers (a job connects to
 * nothing, so it runs on whichever node is primary), memory, logging, WAL. */
static void conf_common(char *buf, size_t len, const char *sock)
{
    snprintf(buf, len,
             "unix_socket_directories = '%s'\n"
             "unix_socket_permissions = 0700\n"
             "ssl_min_protocol_version = 'TLSv1.2'\n"
             "shared_preload_libraries = 'pg_cron,pgaudit,pg_stat_statements'\n"
             "cron.database_name = '%s'\n"
             "cron.use_background_workers = on\n"
             "max_worker_processes = 32\n"
             "max_connections = 200\n"
             "shared_buffers = '256MB'\n"
             "pgaudit.log = 'ddl'\n"
             "pgaudit.log_relation = off\n"
             "pg_stat_statements.track = 'top'\n"
             "logging_collector = on\n"
             "log_directory = 'log'\n"
             "log_filename = 'postgresql-%%a.log'\n"
             "log_truncate_on_rotation = on\n"
             "log_line_prefix = '%%m [%%p] %%q%%u@%%d '\n"
             "timezone = 'UTC'\n"
             "wal_level = replica\n"
             "max_wal_senders = 5\n"
             "# WAL archiving, written by `tsi backup setup` (absent until then)\n"
             "include_if_exists = 'backup.conf'\n",
             sock, tsi_db_name());
}

static int write_config(const char *dir, tsi_error *err)
{
    if (!tsi_cluster_listen_ok(pg_listen()))
        return tsi_error_set(err, TSI_E_INVALID, "TSI_PG_LISTEN is not addresses or *", "'%s'",
                             pg_listen());
    char sock[PATH_MAX], path[PATH_MAX], common[4096], conf[8192];
    if (tsi_cluster_socket_dir(sock, sizeof sock, err) < 0)
        return TSI_E_UNAVAILABLE;
    conf_common(common, sizeof common, sock);
    snprintf(conf, sizeof conf,
             "# written by `tsi db start` at every start; edit postgresql.conf for your own\n"
             "listen_addresses = '%s'\n"
             "port = %d\n"
             "ssl = on\n"
             "ssl_cert_file = 'server.crt'\n"
             "ssl_key_file = 'server.key'\n"
             "ssl_ca_file = 'ca.crt'\n"
             "%s",
             pg_listen(), tsi_db_port(), common);
    snprintf(path, sizeof path, "%s/tsi.conf", dir);
    return write_file(path, conf, 0600, err);
}

int tsi_cluster_write_managed_conf(const char *dir, const char *sock, bool tsi_settings,
                                   const char *extra, tsi_error *err)
{
    char path[PATH_MAX], common[4096], conf[8192];
    if (tsi_settings)
        conf_common(common, sizeof common, sock);
    else
        snprintf(common, sizeof common,
                 "unix_socket_directories = '%s'\nunix_socket_permissions = 0700\n", sock);
    snprintf(conf, sizeof conf,
             "# written by `tsi db ha` at every start (pg_autoctl owns port, listen_addresses,\n"
             "# ssl and replication in postgresql-auto-failover.conf; this file wins)\n"
             "%s%s",
             common, extra ? extra : "");
    snprintf(path, sizeof path, "%s/tsi.conf", dir);
    return write_file(path, conf, 0600, err);
}

static const char HBA_TEXT[] =
    "# written by `tsi db start`: the socket (mode 0700) is reachable only by\n"
    "# the cluster's owner and root, and is the superuser's only way in;\n"
    "# TCP needs TLS and a client certificate whose CN is the role, for the\n"
    "# four tsi roles (replication: tsi_replication); no passwords exist.\n"
    "local   all          all                          trust\n"
    "local   replication  all                          trust\n"
    "hostssl all          " HBA_ROLES "  127.0.0.1/32  cert\n"
    "hostssl all          " HBA_ROLES "  ::1/128       cert\n"
    "hostssl replication  tsi_replication  127.0.0.1/32  cert\n"
    "hostssl replication  tsi_replication  ::1/128       cert\n";

static int write_hba(const char *dir, tsi_error *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/pg_hba.conf", dir);
    int rc = write_file(path, HBA_TEXT, 0600, err);
    if (rc < 0)
        return rc;
    return append_remote_hba(path, err);
}

int tsi_cluster_write_hba(const char *dir, const char *extra, const char *ident, tsi_error *err)
{
    char path[PATH_MAX], text[8192];
    snprintf(text, sizeof text, "%s%s", HBA_TEXT, extra ? extra : "");
    snprintf(path, sizeof path, "%s/pg_hba.conf", dir);
    int rc = write_file(path, text, 0600, err);
    if (rc == 0 && ident) {
        snprintf(path, sizeof path, "%s/pg_ident.conf", dir);
        rc = write_file(path, ident, 0600, err);
    }
    return rc;
}

int tsi_cluster_initdb(const char *dir, tsi_error *err)
{
    char exe[PATH_MAX];
    snprintf(exe, sizeof exe, "%s/initdb", pg_bin);
    char *argv[] = {exe,  "-D",   (char *)dir,  "-U",           "postgres",
                    "-E", "UTF8", "--locale=C", "--auth=trust", "--no-instructions",
                    NULL};
    tsi_info("db", "initialising a PostgreSQL cluster in %s", dir);
    int rc = tsi_cluster_run(argv, true, err);
    if (rc < 0)
        return rc;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/postgresql.conf", dir);
    FILE *f = fopen(path, "a");
    if (!f)
        return tsi_error_set(err, TSI_E_IO, "cannot append to postgresql.conf", "%s", path);
    fputs("\ninclude = 'tsi.conf'\n", f);
    fclose(f);
    return 0;
}

int tsi_cluster_running(void)
{
    char dir[PATH_MAX], exe[PATH_MAX];
    tsi_cluster_data_dir(dir, sizeof dir);
    snprintf(exe, sizeof exe, "%s/pg_ctl", pg_bin);
    char *argv[] = {exe, "-D", dir, "status", NULL};
    char out[1024];
    return tsi_proc_run(argv, server_user(), out, sizeof out, NULL) == 0;
}

static const char SQL_ROLES[] =
    "SET client_min_messages = warning;\n"
    "DO $$\n"
    "DECLARE r text;\n"
    "BEGIN\n"
    "  FOREACH r IN ARRAY ARRAY['tsi_owner','tsi_writer','tsi_jobs','tsi_reader'] LOOP\n"
    "    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN\n"
    "      EXECUTE format('CREATE ROLE %I LOGIN', r);\n"
    "    END IF;\n"
    "  END LOOP;\n"
    "  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tsi_replication') THEN\n"
    "    CREATE ROLE tsi_replication LOGIN REPLICATION;\n"
    "  END IF;\n"
    "END $$;\n"
    "GRANT pg_read_all_stats TO tsi_reader, tsi_jobs;\n";

/* Extensions need the superuser; the schema itself is tsi_owner's (migrations). PostGIS
 * refuses to install while pgaudit logs DDL, so the session turns it off first. */
static const char SQL_EXTENSIONS[] =
    "SET client_min_messages = warning;\n"
    "SET pgaudit.log = 'none';\n"
    "CREATE EXTENSION IF NOT EXISTS postgis;\n"
    "CREATE SCHEMA IF NOT EXISTS partman;\n"
    "CREATE EXTENSION IF NOT EXISTS pg_partman SCHEMA partman;\n"
    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;\n"
    /* pgaudit's event triggers add the object type and name to its DDL log lines */
    "CREATE EXTENSION IF NOT EXISTS pgaudit;\n"
    "GRANT ALL ON SCHEMA partman TO tsi_owner;\n"
    "GRANT ALL ON ALL TABLES IN SCHEMA partman TO tsi_owner;\n"
    "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA partman TO tsi_owner;\n"
    "GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA partman TO tsi_owner;\n"
    "ALTER SCHEMA public OWNER TO tsi_owner;\n"
    "REVOKE CREATE ON SCHEMA public FROM PUBLIC;\n";

static const char SQL_CRON[] = "SET pgaudit.log = 'none';\n"
                               "CREATE EXTENSION IF NOT EXISTS pg_cron;\n"
                               "GRANT USAGE ON SCHEMA cron TO tsi_owner, tsi_jobs;\n";

int tsi_cluster_bootstrap(tsi_error *err)
{
    int rc = 0;
    PGconn *c = tsi_db_connect(TSI_ROLE_ADMIN, "postgres", err);
    PGresult *r = NULL;
    if (!c)
        return TSI_E_UNAVAILABLE;
    if ((rc = tsi_db_exec(c, SQL_ROLES, err)) < 0)
        goto done;
    const char *params[1] = {tsi_db_name()};
    r = PQexecParams(c, "SELECT 1 FROM pg_database WHERE datname = $1", 1, NULL, params, NULL, NULL,
                     0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = tsi_db_result_error(r, "cannot look up the database", err);
        goto done;
    }
    if (PQntuples(r) == 0) {
        char *ident = PQescapeIdentifier(c, tsi_db_name(), strlen(tsi_db_name()));
        char sql[512];
        snprintf(sql, sizeof sql, "CREATE DATABASE %s OWNER tsi_owner", ident ? ident : "\"tsi\"");
        PQfreemem(ident);
        tsi_info("db", "creating database %s", tsi_db_name());
        if ((rc = tsi_db_exec(c, sql, err)) < 0)
            goto done;
    }
    PQclear(r);
    r = NULL;
    PQfinish(c);
    c = tsi_db_connect(TSI_ROLE_ADMIN, NULL, err);
    if (!c)
        return TSI_E_UNAVAILABLE;
    if ((rc = tsi_db_exec(c, SQL_EXTENSIONS, err)) < 0)
        goto done;
    /* pg_cron lives in the one database named by cron.database_name */
    r = PQexec(c, "SELECT current_setting('cron.database_name', true) = current_database()"
                  " AS cron_here");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
        strcmp(tsi_pq_get(r, 0, "cron_here"), "t") == 0)
        rc = tsi_db_exec(c, SQL_CRON, err);
done:
    PQclear(r);
    PQfinish(c);
    return rc;
}

int tsi_cluster_start(tsi_error *err)
{
    char dir[PATH_MAX], certs[PATH_MAX], path[PATH_MAX], src[PATH_MAX];
    int rc;
    if ((rc = prepare_data_dir(dir, sizeof dir, err)) < 0)
        return rc;
    tsi_db_certs_dir(certs, sizeof certs);
    if ((rc = make_certs(certs, NULL, err)) < 0)
        return rc;
    snprintf(path, sizeof path, "%s/PG_VERSION", dir);
    if (!exists(path) && (rc = tsi_cluster_initdb(dir, err)) < 0)
        return rc;
    static const char *const files[] = {"server.crt", "server.key", "ca.crt"};
    for (int i = 0; i < 3; i++) {
        snprintf(src, sizeof src, "%s/%s", certs, files[i]);
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if ((rc = tsi_cluster_copy_file(src, path, 0600, err)) < 0)
            return rc;
    }
    if ((rc = write_hba(dir, err)) < 0)
        return rc;
    if (tsi_cluster_running()) {
        /* a running cluster (an upgrade) takes the pg_hba.conf just written at once */
        if ((rc = tsi_cluster_reload(err)) < 0)
            return rc;
    } else {
        if ((rc = write_config(dir, err)) < 0)
            return rc;
        char exe[PATH_MAX], log[PATH_MAX];
        snprintf(exe, sizeof exe, "%s/pg_ctl", pg_bin);
        snprintf(log, sizeof log, "%s/startup.log", dir);
        char *argv[] = {exe, "-D", dir, "-l", log, "-w", "-t", "120", "start", NULL};
        tsi_info("db", "starting PostgreSQL on 127.0.0.1:%d", tsi_db_port());
        if ((rc = tsi_cluster_run(argv, true, err)) < 0) {
            char buf[600];
            snprintf(buf, sizeof buf, "%s (see %s and %s/log/)", err ? err->detail : "", log, dir);
            if (err)
                snprintf(err->detail, sizeof err->detail, "%s", buf);
            return rc;
        }
    }
    return tsi_cluster_bootstrap(err);
}

int tsi_cluster_reload(tsi_error *err)
{
    PGconn *c = tsi_db_connect(TSI_ROLE_ADMIN, "postgres", err);
    if (!c)
        return TSI_E_UNAVAILABLE;
    int rc = tsi_db_exec(c, "SELECT pg_reload_conf()", err);
    PQfinish(c);
    return rc;
}

int tsi_cluster_stop(tsi_error *err)
{
    if (!tsi_cluster_running())
        return 0;
    char dir[PATH_MAX], exe[PATH_MAX];
    tsi_cluster_data_dir(dir, sizeof dir);
    snprintf(exe, sizeof exe, "%s/pg_ctl", pg_bin);
    char *argv[] = {exe, "-D", dir, "-m", "fast", "-w", "-t", "120", "stop", NULL};
    return tsi_cluster_run(argv, true, err);
}

/* --pg-listen: "*" or numeric IPv4/IPv6 addresses, separated by commas */
bool tsi_cluster_listen_ok(const char *l)
{
    if (!l || !*l || strlen(l) >= PG_OPT_MAX)
        return false;
    char copy[PG_OPT_MAX], *save = NULL;
    snprintf(copy, sizeof copy, "%s", l);
    if (l[strlen(l) - 1] == ',' || l[0] == ',' || strstr(l, ",,"))
        return false;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        unsigned char a[sizeof(struct in6_addr)];
        if (strcmp(t, "*") != 0 && inet_pton(AF_INET, t, a) != 1 && inet_pton(AF_INET6, t, a) != 1)
            return false;
    }
    return true;
}

/* --pg-hostname: empty, or a DNS name */
bool tsi_cluster_hostname_ok(const char *h)
{
    return h && strlen(h) < PG_OPT_MAX &&
           strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") ==
               strlen(h) &&
           *h != '-' && *h != '.';
}
