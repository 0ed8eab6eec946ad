/* tests/harness/proc_helper.c — see proc_helper.h */
#include "proc_helper.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define MAX_LIVE 16
static pid_t live[MAX_LIVE];
static bool hook_installed;

static void kill_live(void)
{
    for (int i = 0; i < MAX_LIVE; i++)
        if (live[i] > 0) {
            kill(live[i], SIGKILL);
            waitpid(live[i], NULL, 0);
            live[i] = 0;
        }
}

static void track(pid_t pid, bool add)
{
    for (int i = 0; i < MAX_LIVE; i++) {
        if (add && live[i] == 0) {
            live[i] = pid;
            return;
        }
        if (!add && live[i] == pid) {
            live[i] = 0;
            return;
        }
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void th_proc_start(th_proc *p, const char *const *args, const char *const *env)
{
    static int seq;
    memset(p, 0, sizeof *p);
    const char *tmp = getenv("TSI_TEST_TMP");
    snprintf(p->log, sizeof p->log, "%s/th_proc_%d_%d.log", tmp && *tmp ? tmp : "/tmp",
             (int)getpid(), ++seq);
    if (!hook_installed) {
        atexit(kill_live);
        hook_installed = true;
    }
    const char *bin = th_tsi_bin();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int dn = open("/dev/null", O_RDONLY);
        if (fd < 0 || dn < 0)
            _exit(126);
        dup2(dn, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        setpgid(0, 0);
        for (const char *const *e = env; e && *e; e++)
            putenv((char *)*e);
        const char *argv[96];
        int n = 0;
        argv[n++] = bin;
        for (const char *const *a = args; a && *a && n < 95; a++)
            argv[n++] = *a;
        argv[n] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    p->pid = pid;
    track(pid, true);
}

bool th_proc_alive(th_proc *p)
{
    if (!p || p->pid <= 0)
        return false;
    if (p->reaped)
        return false;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == 0)
        return true;
    if (r == p->pid) {
        p->reaped = true;
        p->status = st;
    }
    return false;
}

static size_t sink(void *data, size_t sz, size_t n, void *ud)
{
    size_t len = sz * n;
    char **b = ud;
    size_t old = *b ? strlen(*b) : 0;
    char *nb = realloc(*b, old + len + 1);
    if (!nb)
        return 0;
    memcpy(nb + old, data, len);
    nb[old + len] = '\0';
    *b = nb;
    return len;
}

static size_t discard(void *data, size_t sz, size_t n, void *ud)
{
    (void)data;
    (void)ud;
    return sz * n;
}

int th_http(const char *method, const char *url, const char *const *headers, const char *req_body,
            char **body, double *elapsed_ms)
{
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    char *b = NULL;
    struct curl_slist *hl = NULL;
    for (const char *const *h = headers; h && *h; h++)
        hl = curl_slist_append(hl, *h);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    if (hl)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req_body ? req_body : "");
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    if (body) {
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    } else {
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    }
    double t0 = now_ms();
    CURLcode rc = curl_easy_perform(c);
    if (elapsed_ms)
        *elapsed_ms = now_ms() - t0;
    long status = -1;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    if (body)
        *body = b;
    else
        free(b);
    return (int)status;
}

int th_wait_http(th_proc *p, const char *url, int timeout_ms)
{
    double t0 = now_ms();
    while (now_ms() - t0 < timeout_ms) {
        int st = th_http("GET", url, NULL, NULL, NULL, NULL);
        if (st > 0)
            return st;
        if (p && !th_proc_alive(p))
            return -1;
        usleep(50000);
    }
    return -1;
}

char *th_proc_log(const th_proc *p)
{
    FILE *f = fopen(p->log, "r");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)(n > 0 ? n : 0) + 1);
    size_t r = b ? fread(b, 1, (size_t)(n > 0 ? n : 0), f) : 0;
    if (b)
        b[r] = '\0';
    fclose(f);
    return b;
}

int th_proc_stop(th_proc *p)
{
    if (!p || p->pid <= 0)
        return -1;
    int st = p->status, rc = -1;
    pid_t r = p->reaped ? p->pid : waitpid(p->pid, &st, WNOHANG);
    if (r == 0) {
        kill(p->pid, SIGTERM);
        double t0 = now_ms();
        while ((r = waitpid(p->pid, &st, WNOHANG)) == 0 && now_ms() - t0 < 10000)
            usleep(20000);
        if (r == 0) {
            kill(p->pid, SIGKILL);
            r = waitpid(p->pid, &st, 0);
        }
    }
    if (r == p->pid)
        rc = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
    track(p->pid, false);
    p->pid = 0;
    p->reaped = false;
    if (rc != 0 || getenv("TH_SHOW_LOGS")) {
        char *log = th_proc_log(p);
        size_t n = strlen(log);
        fprintf(stderr, "---- %s (exit %d), last lines ----\n%s\n----\n", p->log, rc,
                n > 4000 ? log + n - 4000 : log);
        free(log);
    }
    unlink(p->log);
    return rc;
}

int th_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t l = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}
