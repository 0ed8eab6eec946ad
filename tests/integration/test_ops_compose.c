/* deploy/ (issues 17, 31). The Compose file is resolved by Debian's docker-compose (`config
 * -q` validates it against the Compose schema; `config` resolves anchors and variables) and
 * the resolved file is parsed: the four services on one Compose network addressed by name
 * (no shared network namespace), healthchecks on db and serve, the sim bound where collect
 * can reach it, and each service given only its own files — db alone holds its home (the CA
 * key, every role's key), collect only the writer's certificate volume and the archive,
 * serve only the reader's (read-only) and the archive read-only, sim nothing; the entry
 * point copies into a role's volume only the CA certificate and that role's pair. A broken
 * copy is refused (the validator validates). The Dockerfile has a build stage and two
 * images (app, db) that install no compiler, -dev package or node; app no PostgreSQL; db only
 * what deploy/runtime-closure takes from the packages (tested here on this machine's
 * PostgreSQL, with a missing library). Building the image and running the stack is
 * scripts/compose-test (root, not in CI). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/proc.h"
#include "harness.h"

static char out[1 << 16];

static int compose(const char *file, const char *extra)
{
    char *argv[] = {"docker-compose", "-f", (char *)file, "config", (char *)extra, NULL};
    return tsi_proc_run(argv, NULL, out, sizeof out, NULL);
}

static void need_compose(void)
{
    char *argv[] = {"docker-compose", "version", NULL};
    if (tsi_proc_run(argv, NULL, out, sizeof out, NULL) != 0)
        fail_msg("docker-compose is missing: apt-get install docker-compose (scripts/test "
                 "installs it when it runs as root)");
}

/* The block of service NAME in the resolved file (lines indented by 4 under "  NAME:"),
 * copied into buf; fails the test when the service is missing. */
static void service_block(const char *resolved, const char *name, char *buf, size_t len)
{
    char head[64];
    snprintf(head, sizeof head, "\n  %s:\n", name);
    const char *p = strstr(resolved, head);
    if (!p)
        fail_msg("service %s missing from:\n%s", name, resolved);
    p += strlen(head);
    size_t n = 0;
    while (*p && strncmp(p, "    ", 4) == 0) { /* the service's own lines */
        const char *eol = strchr(p, '\n');
        size_t l = eol ? (size_t)(eol - p + 1) : strlen(p);
        assert_true(n + l < len);
        memcpy(buf + n, p, l);
        n += l;
        p += l;
    }
    buf[n] = '\0';
}

/* The service's volume mounts ("source:target:mode", one per line) into buf. */
static int service_volumes(const char *block, char *buf, size_t len)
{
    buf[0] = '\0';
    const char *p = strstr(block, "\n    volumes:\n");
    if (!p && strncmp(block, "    volumes:\n", 13) == 0)
        p = block - 1;
    if (!p)
        return 0;
    p = strchr(p + 1, '\n') + 1;
    int n = 0;
    size_t used = 0;
    while (strncmp(p, "    - ", 6) == 0) {
        p += 6;
        const char *eol = strchr(p, '\n');
        size_t l = eol ? (size_t)(eol - p) : strlen(p);
        assert_true(used + l + 2 < len);
        memcpy(buf + used, p, l);
        used += l;
        buf[used++] = '\n';
        buf[used] = '\0';
        n++;
        p += l + (eol ? 1 : 0);
    }
    return n;
}

static char *read_text(const char *rel, char *buf, size_t len)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", th_source_dir(), rel);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_compose_valid(void **state)
{
    (void)state;
    need_compose();
    char file[PATH_MAX];
    snprintf(file, sizeof file, "%s/deploy/compose.yaml", th_source_dir());
    /* no VCC credentials or image in the environment: the file's own defaults apply */
    unsetenv("VCC_CLIENT_ID");
    unsetenv("VCC_CLIENT_SECRET");
    unsetenv("TSI_IMAGE");
    unsetenv("TSI_HTTP_PORT");
    int rc = compose(file, "-q");
    if (rc != 0)
        fail_msg("docker-compose config -q refused deploy/compose.yaml:\n%s", out);
    assert_string_equal(out, "");
    rc = compose(file, NULL);
    assert_int_equal(rc, 0);
    static char db[8192], sim[8192], collect[8192], serve[8192], vols[2048];
    service_block(out, "db", db, sizeof db);
    service_block(out, "sim", sim, sizeof sim);
    service_block(out, "collect", collect, sizeof collect);
    service_block(out, "serve", serve, sizeof serve);
    /* services on the Compose network, by name: no shared network namespace */
    assert_null(strstr(out, "network_mode"));
    assert_non_null(strstr(collect, "VCC_BASE_URL: http://sim:8090"));
    assert_non_null(strstr(sim, "- --bind\n    - 0.0.0.0\n")); /* sim answers collect */
    assert_null(strstr(sim, "ports:"));                        /* and is not published */
    /* the db listens on the network with "db" in its certificate; clients verify-full */
    assert_non_null(strstr(db, "TSI_PG_HOSTNAME: db\n"));
    assert_non_null(strstr(db, "TSI_PG_LISTEN: '*'"));
    assert_non_null(strstr(collect, "DATABASE_URL: host=db port=55432 dbname=tsi user=tsi_writer "
                                    "sslmode=verify-full"));
    assert_non_null(strstr(serve, "DATABASE_URL: host=db port=55432 dbname=tsi user=tsi_reader "
                                  "sslmode=verify-full"));
    /* healthchecks on db and serve; serve published on loopback only */
    assert_non_null(strstr(db, "\n    healthcheck:\n"));
    assert_non_null(strstr(serve, "\n    healthcheck:\n"));
    assert_non_null(strstr(serve, "- 127.0.0.1:8080:8080/tcp\n"));
    /* db runs the db image, the others the app image (no PostgreSQL server in it) */
    assert_non_null(strstr(db, "image: tsi-db:dev\n"));
    assert_non_null(strstr(db, "target: db\n"));
    assert_non_null(strstr(serve, "target: app\n"));
    assert_non_null(strstr(sim, "image: tsi:dev\n"));
    assert_non_null(strstr(collect, "image: tsi:dev\n"));
    assert_non_null(strstr(serve, "image: tsi:dev\n"));
    /* every service comes back by itself */
    const char *blocks[] = {db, sim, collect, serve};
    for (int i = 0; i < 4; i++)
        assert_non_null(strstr(blocks[i], "restart: unless-stopped"));

    /* each service's files, exactly */
    assert_int_equal(service_volumes(db, vols, sizeof vols), 3);
    assert_string_equal(vols, "db-home:/var/lib/tsi:rw\ncerts-writer:/export/tsi_writer:rw\n"
                              "certs-reader:/export/tsi_reader:rw\n");
    assert_int_equal(service_volumes(sim, vols, sizeof vols), 0);
    assert_int_equal(service_volumes(collect, vols, sizeof vols), 2);
    assert_string_equal(vols, "certs-writer:/run/tsi:ro\narchive:/var/lib/tsi/archive:rw\n");
    assert_int_equal(service_volumes(serve, vols, sizeof vols), 2);
    assert_string_equal(vols, "certs-reader:/run/tsi:ro\narchive:/var/lib/tsi/archive:ro\n");
    /* a client names no file but its own role's and the CA certificate */
    const char *others_of_serve[] = {"tsi_writer", "tsi_owner", "tsi_jobs", "ca.key", NULL};
    for (const char *const *o = others_of_serve; *o; o++)
        if (strstr(serve, *o))
            fail_msg("serve mentions %s:\n%s", *o, serve);
    const char *others_of_collect[] = {"tsi_reader", "tsi_owner", "tsi_jobs", "ca.key", NULL};
    for (const char *const *o = others_of_collect; *o; o++)
        if (strstr(collect, *o))
            fail_msg("collect mentions %s:\n%s", *o, collect);
    assert_null(strstr(out, "PASSWORD"));

    /* the db's entry point puts into /export/<role> the CA certificate and that role's pair,
     * nothing else: three installs, none of ca.key */
    static char ep[16384];
    read_text("deploy/entrypoint.sh", ep, sizeof ep);
    assert_null(strstr(ep, "ca.key"));
    assert_non_null(strstr(ep, "install -m 644 \"$TSI_HOME/certs/ca.crt\" \"$dir/ca.crt\""));
    assert_non_null(strstr(ep, "install -m 644 \"$TSI_HOME/certs/$role.crt\" \"$dir/$role.crt\""));
    assert_non_null(strstr(ep, "install -m 600 \"$TSI_HOME/certs/$role.key\" \"$dir/$role.key\""));
    int installs = 0;
    for (const char *p = ep; (p = strstr(p, "\n    install ")) != NULL; p++)
        installs++;
    assert_int_equal(installs, 3);

    /* a credential or image given in the environment replaces the default */
    setenv("VCC_CLIENT_SECRET", "from-the-environment", 1);
    setenv("TSI_IMAGE", "tsi-other:1", 1);
    rc = compose(file, NULL);
    unsetenv("VCC_CLIENT_SECRET");
    unsetenv("TSI_IMAGE");
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "VCC_CLIENT_SECRET: from-the-environment"));
    assert_non_null(strstr(out, "image: tsi-other:1"));
}

/* the validator is not a rubber stamp: broken copies are refused */
static void test_compose_broken(void **state)
{
    (void)state;
    need_compose();
    static const char *const broken[] = {
        /* unknown key in a service */
        "services:\n  db:\n    image: tsi:dev\n    restart_policy_typo: always\n",
        /* depends_on a service that does not exist */
        "services:\n  db:\n    image: tsi:dev\n    depends_on: [nothere]\n",
        /* not YAML */
        "services: [\n",
        /* a healthcheck that is not a mapping */
        "services:\n  db:\n    image: tsi:dev\n    healthcheck: true\n",
        /* sharing the network namespace of a service that does not exist */
        "services:\n  db:\n    image: tsi:dev\n  sim:\n    image: tsi:dev\n    network_mode: "
        "\"service:nothere\"\n",
        /* an environment value that is a list */
        "services:\n  db:\n    image: tsi:dev\n    environment:\n      A: [1, 2]\n",
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        char dir[] = "/tmp/tsi-ops-compose-XXXXXX";
        assert_non_null(mkdtemp(dir));
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/compose.yaml", dir);
        FILE *f = fopen(path, "w");
        fputs(broken[i], f);
        fclose(f);
        int rc = compose(path, "-q");
        unlink(path);
        rmdir(dir);
        if (rc == 0)
            fail_msg("docker-compose accepted broken file %zu:\n%s", i, broken[i]);
    }
}

static void test_dockerfile_and_entrypoint(void **state)
{
    (void)state;
    read_text("deploy/Dockerfile", out, sizeof out);
    /* four stages: build runs the same dependency scripts as CI; app (sim, collect, serve)
     * holds what runs; dbfull installs Debian's PostgreSQL packages only as a quarry; db is
     * app plus what runs of dbfull, taken by deploy/runtime-closure */
    const char *build = strstr(out, "FROM debian:12 AS build\n");
    const char *app = strstr(out, "FROM debian:12 AS app\n");
    const char *full = strstr(out, "FROM app AS dbfull\n");
    const char *dbs = strstr(out, "FROM app AS db\n");
    assert_non_null(build);
    assert_non_null(app);
    assert_non_null(full);
    assert_non_null(dbs);
    assert_true(build < app && app < full && full < dbs);
    assert_non_null(strstr(build, "\n && scripts/deps \\\n"));
    assert_non_null(strstr(build, "\n && scripts/web \\\n"));
    /* nothing to build with after the build stage */
    const char *forbidden[] = {"-dev",         "gcc",          "cmake",  "nodejs", " npm",
                               "scripts/deps", "node_modules", "ca.key", NULL};
    for (const char *const *f = forbidden; *f; f++)
        if (strstr(app, *f))
            fail_msg("the app, dbfull or db stage mentions %s", *f);
    /* the app stage installs no PostgreSQL server and leaves no apt lists */
    const char *app_end = strstr(app, "\n# dbfull"); /* dbfull's comment names the packages */
    assert_non_null(app_end);
    char app_only[8192];
    size_t alen =
        (size_t)(app_end - app) < sizeof app_only ? (size_t)(app_end - app) : sizeof app_only - 1;
    memcpy(app_only, app, alen);
    app_only[alen] = '\0';
    assert_null(strstr(app_only, "postgresql-15"));
    assert_non_null(strstr(app_only, "rm -rf /var/lib/apt/lists/*"));
    assert_non_null(strstr(app_only, "COPY --from=build /out/ /"));
    assert_non_null(strstr(app_only, "ENTRYPOINT [\"/opt/tsi/entrypoint.sh\"]"));
    /* dbfull installs the packages and takes the closure, leaving out JIT and raster */
    assert_non_null(strstr(full, "postgresql-15-postgis-3"));
    assert_non_null(strstr(full, "RUN runtime-closure /out /tmp/base.list"));
    assert_non_null(strstr(full, "--exclude /usr/lib/postgresql/15/lib/llvmjit.so"));
    assert_non_null(strstr(full, "--exclude '/usr/lib/postgresql/15/lib/postgis_raster*'"));
    /* db installs no package: it copies the closure and nothing else of dbfull */
    assert_null(strstr(dbs, "apt-get"));
    assert_non_null(strstr(dbs, "COPY --from=dbfull /out/ /"));
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/deploy/entrypoint.sh", th_source_dir());
    assert_int_equal(access(path, X_OK), 0);
    char *argv[] = {"bash", "-n", path, NULL};
    assert_int_equal(tsi_proc_run(argv, NULL, out, sizeof out, NULL), 0);
}

static int exists(const char *dir, const char *path)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s%s", dir, path);
    struct stat st;
    return lstat(p, &st) == 0;
}

/* deploy/runtime-closure on this machine's PostgreSQL: the given module and the libraries
 * it loads are copied, under their real directories (/usr/lib, not Debian 12's /lib link);
 * what the base list names and what is excluded is not; a library that cannot be found
 * fails the closure (a module linked to a library that was then removed). */
static void test_runtime_closure(void **state)
{
    (void)state;
    const char *mod = "/usr/lib/postgresql/15/lib/postgis-3.so";
    if (access(mod, R_OK) != 0)
        fail_msg("%s missing: scripts/deps installs postgresql-15-postgis-3", mod);
    char tmp[] = "/tmp/tsi-closure.XXXXXX";
    assert_non_null(mkdtemp(tmp));
    char script[PATH_MAX], outdir[PATH_MAX], base[PATH_MAX];
    snprintf(script, sizeof script, "%s/deploy/runtime-closure", th_source_dir());
    snprintf(outdir, sizeof outdir, "%s/out", tmp);
    snprintf(base, sizeof base, "%s/base.list", tmp);
    FILE *f = fopen(base, "w");
    assert_non_null(f);
    fputs("/usr/lib/x86_64-linux-gnu/libc.so.6\n", f);
    fclose(f);

    char *argv[] = {script,
                    outdir,
                    base,
                    "--exclude",
                    "/usr/lib/postgresql/15/lib/postgis_raster*",
                    "--exclude",
                    "/usr/lib/postgresql/15/lib/llvmjit.so",
                    (char *)mod,
                    "/usr/lib/postgresql/15/lib/postgis_raster-3.so",
                    "/usr/lib/postgresql/15/lib/llvmjit.so",
                    NULL};
    int rc = tsi_proc_run(argv, NULL, out, sizeof out, NULL);
    if (rc != 0)
        fail_msg("runtime-closure failed (%d):\n%s", rc, out);
    assert_true(exists(outdir, mod));
    /* what postgis-3.so loads: GEOS and PROJ, under /usr/lib */
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof cmd,
             "ls %s/usr/lib/x86_64-linux-gnu/ | grep -c -E '^lib(geos_c|proj)\\.so'", outdir);
    char *sh[] = {"sh", "-c", cmd, NULL};
    assert_int_equal(tsi_proc_run(sh, NULL, out, sizeof out, NULL), 0);
    assert_true(atoi(out) >= 2);
    assert_false(exists(outdir, "/lib"));                                /* no /lib directory */
    assert_false(exists(outdir, "/usr/lib/x86_64-linux-gnu/libc.so.6")); /* in the base list */
    assert_false(exists(outdir, "/usr/lib/postgresql/15/lib/postgis_raster-3.so")); /* excluded */
    assert_false(exists(outdir, "/usr/lib/postgresql/15/lib/llvmjit.so"));
    snprintf(cmd, sizeof cmd, "ls %s/usr/lib/x86_64-linux-gnu/ | grep -c -E '^lib(gdal|LLVM)'",
             outdir);
    tsi_proc_run(sh, NULL, out, sizeof out, NULL);
    assert_int_equal(atoi(out), 0); /* nor what only the excluded modules load */

    /* hostile: a module whose library is gone */
    snprintf(cmd, sizeof cmd,
             "cd %s && printf 'int tsi_gone(void){return 1;}\\n' >gone.c && "
             "printf 'int tsi_gone(void); int f(void){return tsi_gone();}\\n' >mod.c && "
             "cc -shared -fPIC -o libtsigone.so gone.c && "
             "cc -shared -fPIC -o mod.so mod.c -L. -ltsigone && rm libtsigone.so",
             tmp);
    assert_int_equal(tsi_proc_run(sh, NULL, out, sizeof out, NULL), 0);
    char modpath[PATH_MAX], out2[PATH_MAX];
    snprintf(modpath, sizeof modpath, "%s/mod.so", tmp);
    snprintf(out2, sizeof out2, "%s/out2", tmp);
    char *argv2[] = {script, out2, base, modpath, NULL};
    rc = tsi_proc_run(argv2, NULL, out, sizeof out, NULL);
    assert_int_not_equal(rc, 0);
    if (!strstr(out, "needs libtsigone.so, which is not installed"))
        fail_msg("no clear message for the missing library:\n%s", out);
    char *bad[] = {script, out2, NULL}; /* too few arguments: usage, exit 2 */
    assert_int_equal(tsi_proc_run(bad, NULL, out, sizeof out, NULL), 2);

    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    assert_int_equal(tsi_proc_run(sh, NULL, out, sizeof out, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compose_valid),
        cmocka_unit_test(test_compose_broken),
        cmocka_unit_test(test_dockerfile_and_entrypoint),
        cmocka_unit_test(test_runtime_closure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
