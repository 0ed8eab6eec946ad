/* deploy/ (issue 17): no Docker engine runs here, so the Compose file is checked with
 * Debian's docker-compose (`config -q` validates it against the Compose schema and
 * resolves anchors and variables); the resolved file has the four services, the shared
 * network namespace and no secret beyond the simulator's public default; a broken copy
 * is refused (the validator validates); the Dockerfile runs the same scripts/deps as CI;
 * the entry point parses. Building the image and running the services is NOT exercised. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static void test_compose_valid(void **state)
{
    (void)state;
    need_compose();
    char file[PATH_MAX];
    snprintf(file, sizeof file, "%s/deploy/compose.yaml", th_source_dir());
    /* no VCC credentials in the environment: the file's own defaults apply */
    unsetenv("VCC_CLIENT_ID");
    unsetenv("VCC_CLIENT_SECRET");
    int rc = compose(file, "-q");
    if (rc != 0)
        fail_msg("docker-compose config -q refused deploy/compose.yaml:\n%s", out);
    assert_string_equal(out, "");
    rc = compose(file, NULL);
    assert_int_equal(rc, 0);
    /* the four services, resolved */
    const char *services[] = {"\n  db:\n", "\n  sim:\n", "\n  collect:\n", "\n  serve:\n"};
    for (int i = 0; i < 4; i++)
        if (!strstr(out, services[i]))
            fail_msg("service %s missing from:\n%s", services[i], out);
    /* sim, collect and serve share db's network namespace (TLS to 127.0.0.1, verify-full) */
    int shared = 0;
    for (const char *p = out; (p = strstr(p, "network_mode: service:db")) != NULL; p++)
        shared++;
    assert_int_equal(shared, 3);
    /* the collector reaches the simulator inside that namespace */
    assert_non_null(strstr(out, "VCC_BASE_URL: http://127.0.0.1:8090"));
    /* everything comes from the one image built by deploy/Dockerfile */
    assert_non_null(strstr(out, "dockerfile: deploy/Dockerfile"));
    assert_null(strstr(out, "PASSWORD"));
    /* a credential given in the environment replaces the default */
    setenv("VCC_CLIENT_SECRET", "from-the-environment", 1);
    rc = compose(file, NULL);
    unsetenv("VCC_CLIENT_SECRET");
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "VCC_CLIENT_SECRET: from-the-environment"));
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
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/deploy/Dockerfile", th_source_dir());
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    /* the same dependency script as CI, and the entry point the compose file uses */
    assert_non_null(strstr(out, "\n && scripts/deps \\\n"));
    assert_non_null(strstr(out, "\n && scripts/web \\\n"));
    assert_non_null(strstr(out, "FROM debian:12"));
    assert_non_null(strstr(out, "deploy/entrypoint.sh"));
    snprintf(path, sizeof path, "%s/deploy/entrypoint.sh", th_source_dir());
    assert_int_equal(access(path, X_OK), 0);
    char *argv[] = {"bash", "-n", path, NULL};
    assert_int_equal(tsi_proc_run(argv, NULL, out, sizeof out, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compose_valid),
        cmocka_unit_test(test_compose_broken),
        cmocka_unit_test(test_dockerfile_and_entrypoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
